package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Files;
import java.nio.file.Path;

/** The parts of {@code generation_config.json} that change what {@code generate} does when a caller says nothing. */
public record GenerationDefaults(Integer eosTokenId, Integer padTokenId, Integer maxNewTokens, Integer numBeams,
                                 Double lengthPenalty, Double repetitionPenalty) {

    public static GenerationDefaults load(Path modelDir) {
        Path f = modelDir.resolve("generation_config.json");
        if (!Files.exists(f)) {
            return new GenerationDefaults(null, null, null, null, null, null);
        }
        JsonNode n = Json.read(f);
        return new GenerationDefaults(Json.optInt(n, "eos_token_id"), Json.optInt(n, "pad_token_id"),
                Json.optInt(n, "max_new_tokens"), Json.optInt(n, "num_beams"),
                n.hasNonNull("length_penalty") ? n.get("length_penalty").asDouble() : null,
                n.hasNonNull("repetition_penalty") ? n.get("repetition_penalty").asDouble() : null);
    }
}
