package io.blip2stream.model.vision;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import io.blip2stream.model.config.VisionConfig;
import io.blip2stream.model.nn.LayerNorm;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.OneDnnAttention;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.weights.Weights;

import java.util.ArrayList;
import java.util.List;

/**
 * The frozen image encoder (transformers' {@code Blip2VisionModel}, EVA ViT-g in the real checkpoints):
 * patch embedding, class token, learned position embeddings, pre-LN encoder layers with a fused {@code qkv}
 * projection, exact GELU, and a final {@code post_layernorm}.
 *
 * <p>Dimensions: B batch, C channels (3), G patches per side, P patch size, S = G*G + 1 tokens, D hidden,
 * N heads, H head size, F intermediate size.
 */
public final class Blip2VisionModel {

    /** Blip2VisionEmbeddings. */
    record Embeddings(NDArray patchWeightT, NDArray patchBias, NDArray classEmbedding, NDArray positionEmbedding) {}

    /** Blip2Attention: fused qkv [D, 3D] with its bias, then the output projection. */
    record Attention(Linear qkv, Linear projection) {}

    /** Blip2EncoderLayer. */
    record EncoderLayer(LayerNorm layerNorm1, Attention selfAttn, LayerNorm layerNorm2, Linear fc1, Linear fc2) {}

    private final VisionConfig config;
    private final Embeddings embeddings;   // patch [C*P*P, D], bias [D], class [1, 1, D], positions [1, S, D]
    private final List<EncoderLayer> layers;
    private final LayerNorm postLayernorm;
    private final boolean oneDnnAttention; // the attention in oneDNN (a low precision on a CPU with oneDNN)

    private Blip2VisionModel(VisionConfig config, Embeddings embeddings, List<EncoderLayer> layers, LayerNorm post,
                             boolean oneDnnAttention) {
        this.config = config;
        this.embeddings = embeddings;
        this.layers = layers;
        this.postLayernorm = post;
        this.oneDnnAttention = oneDnnAttention;
    }

    public static Blip2VisionModel load(Weights w, NDManager m, VisionConfig c, String prefix) {
        long d = c.hiddenSize();
        long p = c.patchSize();
        String e = prefix + ".embeddings";
        NDArray patchT = w.loadTransposed(m, e + ".patch_embedding.weight", d, 3, p, p); // (C*P*P, D)
        Embeddings emb = new Embeddings(patchT,
                w.load(m, e + ".patch_embedding.bias", d),
                w.load(m, e + ".class_embedding", 1, 1, d),
                w.load(m, e + ".position_embedding", 1, c.numPositions(), d));
        List<EncoderLayer> layers = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String l = prefix + ".encoder.layers." + i;
            layers.add(new EncoderLayer(
                    LayerNorm.load(w, m, l + ".layer_norm1", d, c.layerNormEps()),
                    new Attention(qkv(w, m, c, l + ".self_attn"), Linear.load(w, m, l + ".self_attn.projection", d, d, true)),
                    LayerNorm.load(w, m, l + ".layer_norm2", d, c.layerNormEps()),
                    Linear.load(w, m, l + ".mlp.fc1", d, c.intermediateSize(), true),
                    Linear.load(w, m, l + ".mlp.fc2", c.intermediateSize(), d, true)));
        }
        return new Blip2VisionModel(c, emb, layers, LayerNorm.load(w, m, prefix + ".post_layernorm", d, c.layerNormEps()),
                OneDnnAttention.serves(w.precision(), m));
    }

    /**
     * The fused qkv projection. Its bias is taken as stored when the checkpoint has {@code qkv.bias}; older
     * exports keep {@code q_bias} and {@code v_bias} instead, and the key part is then zero (as in EVA).
     */
    private static Linear qkv(Weights w, NDManager m, VisionConfig c, String prefix) {
        long d = c.hiddenSize();
        Linear noBias = Linear.load(w, m, prefix + ".qkv", d, 3 * d, false);
        if (w.contains(prefix + ".qkv.bias")) {
            return noBias.withBias(w.load(m, prefix + ".qkv.bias", 3 * d));
        }
        if (c.qkvBias() && w.contains(prefix + ".q_bias")) {
            NDArray q = w.load(m, prefix + ".q_bias", d);
            NDArray v = w.load(m, prefix + ".v_bias", d);
            NDArray bias = NDArrays.concat(new NDList(q, m.zeros(q.getShape()), v), 0);
            return noBias.withBias(bias);
        }
        if (c.qkvBias()) {
            w.load(m, prefix + ".qkv.bias", 3 * d); // fails naming the missing tensor
        }
        return noBias;
    }

    public VisionConfig config() {
        return config;
    }

    /**
     * pixel_values [B, C, H, W] to last_hidden_state [B, S, D] (after post_layernorm), in pixel_values' manager.
     * Each layer runs in a scope of its own that closes when its output exists: a layer's intermediates (scores
     * [B, N, S, S], the MLP's [B, S, F] and the GELU's parts) are freed before the next layer starts, instead of all
     * layers' staying until the caller's scope closes (2.3 GB at batch 1 for ViT-g, issue 21).
     */
    public NDArray forward(NDArray pixelValues) {
        NDManager outer = pixelValues.getManager();
        NDArray x = embed(pixelValues);                      // (B, S, D)
        for (EncoderLayer layer : layers) {
            NDArray next;
            try (NDManager layerScope = outer.newSubManager()) {
                x.tempAttach(layerScope);                    // ops on x now create their outputs in layerScope
                next = encoderLayer(layer, x);               // (B, S, D)
                next.attach(outer);                          // kept; the rest goes with layerScope
            }
            x.close();                                       // back in outer after layerScope: the previous residual stream
            x = next;
        }
        return postLayernorm.forward(x);
    }

    private NDArray embed(NDArray pixelValues) {
        long b = pixelValues.getShape().get(0);
        long g = config.gridSize();
        long p = config.patchSize();
        long d = config.hiddenSize();
        // Conv2d with kernel = stride = P, as a matmul over unfolded patches
        NDArray patches = pixelValues.reshape(b, 3, g, p, g, p)
                .transpose(0, 2, 4, 1, 3, 5)                   // (B, G, G, C, P, P)
                .reshape(b, g * g, 3 * p * p);                  // (B, G*G, C*P*P)
        NDArray patchEmbeds = Ops.linear(patches, embeddings.patchWeightT(), embeddings.patchBias()); // (B, G*G, D)
        NDArray cls = patchEmbeds.getManager().zeros(new ai.djl.ndarray.types.Shape(b, 1, d))
                .add(embeddings.classEmbedding());             // (B, 1, D)
        return NDArrays.concat(new NDList(cls, patchEmbeds), 1)
                .add(embeddings.positionEmbedding());          // (B, S, D)
    }

    private NDArray encoderLayer(EncoderLayer l, NDArray x) {
        NDArray h = attention(l.selfAttn(), l.layerNorm1().forward(x), x);             // (B, S, D), the residual added
        NDArray f = l.fc1().forward(l.layerNorm2().forward(h), config.hiddenAct(), null); // (B, S, F), activated
        return l.fc2().forward(f, null, h);                                            // (B, S, D), the residual added
    }

    /** The block's self-attention on x (after its layer norm), with {@code residual} added after the projection. */
    private NDArray attention(Attention a, NDArray x, NDArray residual) {
        long b = x.getShape().get(0);
        long s = x.getShape().get(1);
        int n = config.numAttentionHeads();
        long hd = config.headDim();
        if (oneDnnAttention) { // the same attention without the copies: q, k, v read in place, heads merged on the way
            NDArray ctx = OneDnnAttention.selfAttention(a.qkv().forward(x), n, (float) Math.pow(hd, -0.5)); // (B, S, D)
            return a.projection().forward(ctx, null, residual);
        }
        NDArray qkv = a.qkv().forward(x).reshape(b, s, 3, n, hd);          // (B, S, 3, N, H)
        NDArray q = qkv.get(new NDIndex(":, :, 0")).transpose(0, 2, 1, 3);  // (B, N, S, H)
        NDArray kT = qkv.get(new NDIndex(":, :, 1")).transpose(0, 2, 3, 1); // (B, N, H, S)
        NDArray v = qkv.get(new NDIndex(":, :, 2")).transpose(0, 2, 1, 3);
        NDArray ctx = Ops.attention(q, kT, v, null, (float) Math.pow(hd, -0.5)); // (B, N, S, H)
        return a.projection().forward(Ops.mergeHeads(ctx), null, residual); // (B, S, D)
    }
}
