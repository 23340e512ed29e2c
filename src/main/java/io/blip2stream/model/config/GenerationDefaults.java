package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The special tokens of {@code generation_config.json}, which take precedence over the text config's, as in
 * transformers. A list of EOS ids keeps its first.
 */
public record GenerationDefaults(Integer eosTokenId, Integer padTokenId) {

    public static GenerationDefaults load(Path modelDir) {
        Path f = modelDir.resolve("generation_config.json");
        if (!Files.exists(f)) {
            return new GenerationDefaults(null, null);
        }
        JsonNode n = Json.read(f);
        return new GenerationDefaults(Json.optInt(n, "eos_token_id"), Json.optInt(n, "pad_token_id"));
    }
}
