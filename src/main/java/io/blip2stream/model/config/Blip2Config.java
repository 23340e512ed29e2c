package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Path;

/**
 * A BLIP-2 checkpoint's {@code config.json} (transformers' {@code Blip2Config}), with transformers' defaults
 * resolved here and nowhere else.
 *
 * @param imageTokenIndex the id of the {@code <image>} token whose embeddings the projected queries replace,
 *                        or {@code null} for legacy checkpoints (the queries are then concatenated before the text)
 */
public record Blip2Config(
        VisionConfig vision,
        QFormerConfig qformer,
        TextConfig text,
        int numQueryTokens,
        int imageTextHiddenSize,
        Integer imageTokenIndex,
        JsonNode raw) {

    public static Blip2Config load(Path modelDir) {
        return parse(Json.read(modelDir.resolve("config.json")));
    }

    public static Blip2Config parse(JsonNode n) {
        JsonNode textNode = n.get("text_config");
        TextConfig text = null;
        if (textNode != null && !textNode.isNull()) {
            String type = Json.s(textNode, "model_type", "opt");
            if ("opt".equals(type)) {
                text = OptConfig.from(textNode);
            } else if ("t5".equals(type) || "mt5".equals(type)) {
                text = T5Config.from(textNode);
            } else {
                throw new IllegalArgumentException("text_config.model_type '" + type + "' is not supported (supported: opt, t5)");
            }
        } else if (!n.has("qformer_config") || !"Blip2ForImageTextRetrieval".equals(firstArchitecture(n))) {
            text = OptConfig.from(Json.MAPPER.createObjectNode());
        }
        Integer imageToken = Json.optInt(n, "image_token_index");
        if (imageToken == null) {
            imageToken = Json.optInt(n, "image_token_id");
        }
        return new Blip2Config(
                VisionConfig.from(Json.obj(n, "vision_config")),
                QFormerConfig.from(Json.obj(n, "qformer_config")),
                text,
                Json.i(n, "num_query_tokens", 32),
                Json.i(n, "image_text_hidden_size", 256),
                imageToken,
                n);
    }

    private static String firstArchitecture(JsonNode n) {
        JsonNode a = n.get("architectures");
        return a != null && a.isArray() && a.size() > 0 ? a.get(0).asText() : "";
    }

    /** Whether this is a retrieval checkpoint (transformers' {@code Blip2ForImageTextRetrieval}). */
    public boolean isRetrieval() {
        return "Blip2ForImageTextRetrieval".equals(firstArchitecture(raw))
                || (qformer.useQformerTextInput() && !"Blip2ForConditionalGeneration".equals(firstArchitecture(raw)));
    }

    public OptConfig opt() {
        if (!(text instanceof OptConfig o)) {
            throw new IllegalStateException("this checkpoint's language model is not OPT");
        }
        return o;
    }

    static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
