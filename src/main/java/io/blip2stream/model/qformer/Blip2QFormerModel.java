package io.blip2stream.model.qformer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import io.blip2stream.model.config.QFormerConfig;
import io.blip2stream.model.nn.LayerNorm;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.weights.Weights;

import java.util.ArrayList;
import java.util.List;

/**
 * The Querying Transformer (transformers' {@code Blip2QFormerModel}): a BERT-style post-LN encoder over the
 * learned queries and, in retrieval checkpoints, text tokens after them. Queries and text share the
 * self-attention (under the attention mask); only the queries cross-attend to the image features, in every
 * {@code cross_attention_frequency}-th layer, and each part has its own feed-forward
 * ({@code intermediate_query}/{@code output_query} for queries, {@code intermediate}/{@code output} for text).
 *
 * <p>Dimensions: B batch, Q queries, T text tokens, S image tokens, D hidden, E image feature size
 * ({@code encoder_hidden_size}), N heads, H head size, F intermediate size.
 */
public final class Blip2QFormerModel {

    /** Blip2QFormerMultiHeadAttention followed by Blip2QFormerSelfOutput (dense, then LayerNorm of the residual sum). */
    record Attention(Linear query, Linear key, Linear value, Linear outputDense, LayerNorm outputLayerNorm) {}

    /** A feed-forward: intermediate dense + activation, output dense, LayerNorm of the residual sum. */
    record FeedForward(Linear intermediate, Linear output, LayerNorm layerNorm) {}

    /** Blip2QFormerLayer. crossAttention is null in layers without it; text is null without text input. */
    record Layer(Attention attention, Attention crossAttention, FeedForward query, FeedForward text) {}

    private final QFormerConfig config;
    private final LayerNorm layernorm; // applied to the embeddings (queries, then text) before the first layer
    private final List<Layer> layers;

    private Blip2QFormerModel(QFormerConfig config, LayerNorm layernorm, List<Layer> layers) {
        this.config = config;
        this.layernorm = layernorm;
        this.layers = layers;
    }

    /** @param withText load the text feed-forward too (retrieval checkpoints) */
    public static Blip2QFormerModel load(Weights w, NDManager m, QFormerConfig c, String prefix, boolean withText) {
        long d = c.hiddenSize();
        double eps = c.layerNormEps();
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String l = prefix + ".encoder.layer." + i;
            layers.add(new Layer(
                    attention(w, m, l + ".attention", d, d, eps),
                    c.hasCrossAttention(i) ? attention(w, m, l + ".crossattention", d, c.encoderHiddenSize(), eps) : null,
                    feedForward(w, m, l + ".intermediate_query", l + ".output_query", c),
                    withText ? feedForward(w, m, l + ".intermediate", l + ".output", c) : null));
        }
        return new Blip2QFormerModel(c, LayerNorm.load(w, m, prefix + ".layernorm", d, eps), layers);
    }

    private static Attention attention(Weights w, NDManager m, String prefix, long d, long kvIn, double eps) {
        return new Attention(
                Linear.load(w, m, prefix + ".attention.query", d, d, true),
                Linear.load(w, m, prefix + ".attention.key", kvIn, d, true),
                Linear.load(w, m, prefix + ".attention.value", kvIn, d, true),
                Linear.load(w, m, prefix + ".output.dense", d, d, true),
                LayerNorm.load(w, m, prefix + ".output.LayerNorm", d, eps));
    }

    private static FeedForward feedForward(Weights w, NDManager m, String intermediate, String output, QFormerConfig c) {
        long d = c.hiddenSize();
        return new FeedForward(Linear.load(w, m, intermediate + ".dense", d, c.intermediateSize(), true),
                Linear.load(w, m, output + ".dense", c.intermediateSize(), d, true),
                LayerNorm.load(w, m, output + ".LayerNorm", d, c.layerNormEps()));
    }

    public QFormerConfig config() {
        return config;
    }

    /** The query path: query_embeds [B, Q, D] and image features [B, S, E] to the query outputs [B, Q, D]. */
    public NDArray forward(NDArray queryEmbeds, NDArray imageEmbeds) {
        return forward(queryEmbeds, (int) queryEmbeds.getShape().get(1), null, imageEmbeds);
    }

    /**
     * The general pass, as Blip2QFormerModel.forward with {@code query_length}.
     *
     * @param embeddings    [B, Q + T, D]: the queries, then text embeddings (word + position)
     * @param queryLength   Q; 0 for text alone
     * @param attentionMask additive [B, 1, 1, Q + T] over keys (padding), or null for none
     * @param imageEmbeds   [B, S, E], or null when there are no queries
     * @return last_hidden_state [B, Q + T, D]
     */
    public NDArray forward(NDArray embeddings, int queryLength, NDArray attentionMask, NDArray imageEmbeds) {
        NDArray h = layernorm.forward(embeddings); // dropout is identity at inference
        long total = h.getShape().get(1);
        for (Layer layer : layers) {
            h = attend(layer.attention(), h, h, attentionMask);
            if (queryLength > 0) {
                NDArray q = total > queryLength ? h.get(new NDIndex(":, :{}, :", queryLength)) : h; // (B, Q, D)
                if (layer.crossAttention() != null) {
                    q = attend(layer.crossAttention(), q, imageEmbeds, null); // every image token is real
                }
                q = feedForward(layer.query(), q);
                if (total > queryLength) {
                    NDArray t = feedForward(text(layer), h.get(new NDIndex(":, {}:, :", queryLength))); // (B, T, D)
                    h = NDArrays.concat(new NDList(q, t), 1);
                } else {
                    h = q;
                }
            } else {
                h = feedForward(text(layer), h);
            }
        }
        return h;
    }

    private static FeedForward text(Layer layer) {
        if (layer.text() == null) {
            throw new IllegalStateException("this Q-Former has no text feed-forward (not a retrieval checkpoint)");
        }
        return layer.text();
    }

    private NDArray feedForward(FeedForward f, NDArray h) {
        NDArray x = Ops.activation(config.hiddenAct(), f.intermediate().forward(h)); // (B, T, F)
        return f.layerNorm().forward(f.output().forward(x).add(h));
    }

    /** Attention of {@code h} [B, T, D] over {@code kv} [B, S, D or E], then dense + LayerNorm(. + h). */
    private NDArray attend(Attention a, NDArray h, NDArray kv, NDArray mask) {
        int n = config.numAttentionHeads();
        NDArray q = Ops.splitHeads(a.query().forward(h), n);                   // (B, N, T, H)
        NDArray kT = Ops.splitHeadsTransposed(a.key().forward(kv), n);         // (B, N, H, S)
        NDArray v = Ops.splitHeads(a.value().forward(kv), n);                  // (B, N, S, H)
        NDArray ctx = Ops.mergeHeads(Ops.attention(q, kT, v, mask, (float) (1.0 / Math.sqrt(config.headDim())))); // (B, T, D)
        return a.outputLayerNorm().forward(a.outputDense().forward(ctx).add(h));
    }
}
