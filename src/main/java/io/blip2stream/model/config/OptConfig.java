package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * {@code text_config} of an OPT language model (transformers' {@code OPTConfig}).
 * OPT's layer norms use PyTorch's default epsilon, 1e-5, which the config does not carry.
 */
public record OptConfig(
        int vocabSize,
        int hiddenSize,
        int numHiddenLayers,
        int ffnDim,
        int numAttentionHeads,
        int maxPositionEmbeddings,
        int wordEmbedProjDim,
        boolean doLayerNormBefore,
        boolean removeFinalLayerNorm,
        boolean enableBias,
        boolean layerNormElementwiseAffine,
        String activationFunction,
        int bosTokenId,
        int eosTokenId,
        int padTokenId,
        boolean tieWordEmbeddings) implements TextConfig {

    /** torch.nn.LayerNorm's default, used by every OPT layer norm. */
    public static final double LAYER_NORM_EPS = 1e-5;
    /** OPT's learned positions start at index 2 of the position table (a fairseq legacy). */
    public static final int POSITION_OFFSET = 2;

    public OptConfig {
        Blip2Config.require(hiddenSize % numAttentionHeads == 0, "text hidden_size must be divisible by num_attention_heads");
    }

    static OptConfig from(JsonNode n) {
        int hidden = Json.i(n, "hidden_size", 768);
        Integer eos = Json.optInt(n, "eos_token_id");
        return new OptConfig(
                Json.i(n, "vocab_size", 50272),
                hidden,
                Json.i(n, "num_hidden_layers", 12),
                Json.i(n, "ffn_dim", 3072),
                Json.i(n, "num_attention_heads", 12),
                Json.i(n, "max_position_embeddings", 2048),
                Json.i(n, "word_embed_proj_dim", hidden),
                Json.b(n, "do_layer_norm_before", true),
                Json.b(n, "_remove_final_layer_norm", false),
                Json.b(n, "enable_bias", true),
                Json.b(n, "layer_norm_elementwise_affine", true),
                Json.s(n, "activation_function", "relu"),
                Json.i(n, "bos_token_id", 2),
                eos == null ? 2 : eos,
                Json.i(n, "pad_token_id", 1),
                Json.b(n, "tie_word_embeddings", true));
    }

    @Override
    public String modelType() {
        return "opt";
    }

    @Override
    public boolean isEncoderDecoder() {
        return false;
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }
}
