package io.blip2stream.model.qformer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.config.QFormerConfig;
import io.blip2stream.model.nn.LayerNorm;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.weights.Weights;

import java.util.ArrayList;
import java.util.List;

/**
 * The Querying Transformer (transformers' {@code Blip2QFormerModel}): a BERT-style post-LN encoder whose
 * learned queries attend to each other, cross-attend to the image features in every
 * {@code cross_attention_frequency}-th layer, and pass through the query feed-forward
 * ({@code intermediate_query} / {@code output_query}).
 *
 * <p>Dimensions: B batch, Q queries, S image tokens, D hidden, E image feature size
 * ({@code encoder_hidden_size}), N heads, H head size, F intermediate size.
 */
public final class Blip2QFormerModel {

    /** Blip2QFormerMultiHeadAttention followed by Blip2QFormerSelfOutput (dense, then LayerNorm of the residual sum). */
    record Attention(Linear query, Linear key, Linear value, Linear outputDense, LayerNorm outputLayerNorm) {}

    /** Blip2QFormerLayer: the query path. crossAttention is null in layers without it. */
    record Layer(Attention attention, Attention crossAttention, Linear intermediateQuery, Linear outputQueryDense,
                 LayerNorm outputQueryLayerNorm) {}

    private final QFormerConfig config;
    private final LayerNorm layernorm; // applied to the query embeddings before the first layer
    private final List<Layer> layers;

    private Blip2QFormerModel(QFormerConfig config, LayerNorm layernorm, List<Layer> layers) {
        this.config = config;
        this.layernorm = layernorm;
        this.layers = layers;
    }

    public static Blip2QFormerModel load(Weights w, NDManager m, QFormerConfig c, String prefix) {
        long d = c.hiddenSize();
        double eps = c.layerNormEps();
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String l = prefix + ".encoder.layer." + i;
            Attention self = attention(w, m, l + ".attention", d, d, eps);
            Attention cross = c.hasCrossAttention(i) ? attention(w, m, l + ".crossattention", d, c.encoderHiddenSize(), eps) : null;
            layers.add(new Layer(self, cross,
                    Linear.load(w, m, l + ".intermediate_query.dense", d, c.intermediateSize(), true),
                    Linear.load(w, m, l + ".output_query.dense", c.intermediateSize(), d, true),
                    LayerNorm.load(w, m, l + ".output_query.LayerNorm", d, eps)));
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

    public QFormerConfig config() {
        return config;
    }

    /**
     * query_embeds [B, Q, D] and image features [B, S, E] to the query outputs, last_hidden_state [B, Q, D].
     * The image attention mask is all ones (every image token is real), so no mask is applied.
     */
    public NDArray forward(NDArray queryEmbeds, NDArray imageEmbeds) {
        NDArray h = layernorm.forward(queryEmbeds); // (B, Q, D); dropout is identity at inference
        for (Layer layer : layers) {
            h = attend(layer.attention(), h, h);
            if (layer.crossAttention() != null) {
                h = attend(layer.crossAttention(), h, imageEmbeds);
            }
            NDArray f = Ops.activation(config.hiddenAct(), layer.intermediateQuery().forward(h)); // (B, Q, F)
            h = layer.outputQueryLayerNorm().forward(layer.outputQueryDense().forward(f).add(h));
        }
        return h;
    }

    /** Attention of {@code h} [B, T, D] over {@code kv} [B, S, D or E], then dense + LayerNorm(. + h). */
    private NDArray attend(Attention a, NDArray h, NDArray kv) {
        int n = config.numAttentionHeads();
        NDArray q = Ops.splitHeads(a.query().forward(h), n);  // (B, N, T, H)
        NDArray kT = Ops.splitHeadsTransposed(a.key().forward(kv), n); // (B, N, H, S)
        NDArray v = Ops.splitHeads(a.value().forward(kv), n); // (B, N, S, H)
        NDArray ctx = Ops.mergeHeads(Ops.attention(q, kT, v, null, (float) (1.0 / Math.sqrt(config.headDim())))); // (B, T, D)
        return a.outputLayerNorm().forward(a.outputDense().forward(ctx).add(h));
    }
}
