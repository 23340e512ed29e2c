package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * {@code text_config} of a T5 language model (transformers' {@code T5Config}; FlanT5 is T5 v1.1: gated GELU,
 * no tied head in the released checkpoints).
 *
 * @param denseActFn           the feed-forward activation ({@code gelu_new} for "gated-gelu")
 * @param gatedAct             whether the feed-forward is gated ({@code wi_0}, {@code wi_1})
 * @param scaleDecoderOutputs  whether the decoder output is scaled by {@code d_model^-0.5} before the LM head
 *                             (transformers 5's flag; when absent it follows {@code tie_word_embeddings}, the
 *                             rule of transformers 4)
 */
public record T5Config(
        int vocabSize,
        int dModel,
        int dKv,
        int dFf,
        int numLayers,
        int numDecoderLayers,
        int numHeads,
        int relativeAttentionNumBuckets,
        int relativeAttentionMaxDistance,
        double layerNormEpsilon,
        String denseActFn,
        boolean gatedAct,
        int decoderStartTokenId,
        int eosTokenId,
        int padTokenId,
        boolean tieWordEmbeddings,
        boolean scaleDecoderOutputs) implements TextConfig {

    static T5Config from(JsonNode n) {
        String proj = Json.s(n, "feed_forward_proj", "relu");
        boolean gated = proj.startsWith("gated-");
        String act = gated ? proj.substring("gated-".length()) : proj;
        if (act.equals("gelu")) {
            act = "gelu_new"; // transformers maps "gated-gelu" to gelu_new for backwards compatibility
        }
        act = Json.s(n, "dense_act_fn", act);
        gated = Json.b(n, "is_gated_act", gated);
        int layers = Json.i(n, "num_layers", 6);
        boolean tie = Json.b(n, "tie_word_embeddings", true);
        Integer eos = Json.optInt(n, "eos_token_id");
        return new T5Config(
                Json.i(n, "vocab_size", 32128),
                Json.i(n, "d_model", 512),
                Json.i(n, "d_kv", 64),
                Json.i(n, "d_ff", 2048),
                layers,
                Json.i(n, "num_decoder_layers", layers),
                Json.i(n, "num_heads", 8),
                Json.i(n, "relative_attention_num_buckets", 32),
                Json.i(n, "relative_attention_max_distance", 128),
                Json.d(n, "layer_norm_epsilon", 1e-6),
                act,
                gated,
                Json.i(n, "decoder_start_token_id", Json.i(n, "pad_token_id", 0)),
                eos == null ? 1 : eos,
                Json.i(n, "pad_token_id", 0),
                tie,
                Json.b(n, "scale_decoder_outputs", tie));
    }

    @Override
    public String modelType() {
        return "t5";
    }

    @Override
    public boolean isEncoderDecoder() {
        return true;
    }

    /** T5 has no BOS; an empty prompt is the tokenizer's "" (which is "</s>"). */
    @Override
    public int bosTokenId() {
        return -1;
    }

    /** The width of the attention's inner projection, heads times {@code d_kv}. */
    public int innerDim() {
        return numHeads * dKv;
    }
}
