package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

/** {@code vision_config} of a BLIP-2 checkpoint (transformers' {@code Blip2VisionConfig}; defaults are EVA ViT-g). */
public record VisionConfig(
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int imageSize,
        int patchSize,
        String hiddenAct,
        double layerNormEps,
        boolean qkvBias) {

    public VisionConfig {
        Blip2Config.require(hiddenSize % numAttentionHeads == 0, "vision hidden_size must be divisible by num_attention_heads");
        Blip2Config.require(imageSize % patchSize == 0, "vision image_size must be a multiple of patch_size");
    }

    static VisionConfig from(JsonNode n) {
        return new VisionConfig(
                Json.i(n, "hidden_size", 1408),
                Json.i(n, "intermediate_size", 6144),
                Json.i(n, "num_hidden_layers", 39),
                Json.i(n, "num_attention_heads", 16),
                Json.i(n, "image_size", 224),
                Json.i(n, "patch_size", 14),
                Json.s(n, "hidden_act", "gelu"),
                Json.d(n, "layer_norm_eps", 1e-6),
                Json.b(n, "qkv_bias", true));
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    /** Patches per image side. */
    public int gridSize() {
        return imageSize / patchSize;
    }

    /** Patches plus the class token. */
    public int numPositions() {
        return gridSize() * gridSize() + 1;
    }
}
