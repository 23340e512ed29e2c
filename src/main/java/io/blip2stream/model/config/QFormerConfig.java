package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

/** {@code qformer_config} of a BLIP-2 checkpoint (transformers' {@code Blip2QFormerConfig}). */
public record QFormerConfig(
        int vocabSize,
        int hiddenSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int intermediateSize,
        String hiddenAct,
        int maxPositionEmbeddings,
        double layerNormEps,
        int padTokenId,
        String positionEmbeddingType,
        int crossAttentionFrequency,
        int encoderHiddenSize,
        boolean useQformerTextInput) {

    public QFormerConfig {
        Blip2Config.require(hiddenSize % numAttentionHeads == 0, "qformer hidden_size must be divisible by num_attention_heads");
        Blip2Config.require(crossAttentionFrequency > 0, "qformer cross_attention_frequency must be positive");
        Blip2Config.require("absolute".equals(positionEmbeddingType),
                "qformer position_embedding_type '" + positionEmbeddingType + "' is not supported (only 'absolute')");
    }

    static QFormerConfig from(JsonNode n) {
        return new QFormerConfig(
                Json.i(n, "vocab_size", 30522),
                Json.i(n, "hidden_size", 768),
                Json.i(n, "num_hidden_layers", 12),
                Json.i(n, "num_attention_heads", 12),
                Json.i(n, "intermediate_size", 3072),
                Json.s(n, "hidden_act", "gelu"),
                Json.i(n, "max_position_embeddings", 512),
                Json.d(n, "layer_norm_eps", 1e-12),
                Json.i(n, "pad_token_id", 0),
                Json.s(n, "position_embedding_type", "absolute"),
                Json.i(n, "cross_attention_frequency", 2),
                Json.i(n, "encoder_hidden_size", 1408),
                Json.b(n, "use_qformer_text_input", false));
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    /** transformers: a layer cross-attends to the image when {@code layer_idx % cross_attention_frequency == 0}. */
    public boolean hasCrossAttention(int layerIdx) {
        return layerIdx % crossAttentionFrequency == 0;
    }
}
