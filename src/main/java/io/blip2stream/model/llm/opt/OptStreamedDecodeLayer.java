package io.blip2stream.model.llm.opt;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.nn.LayerNorm;
import io.blip2stream.model.nn.LowPrecisionWeight;
import io.blip2stream.model.nn.WeightStreaming;
import io.blip2stream.model.nn.tf.TfEager;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.List;

/**
 * A decode step of OPT with bfloat16 or int8 weights, in Java: every projection multiplies Java arrays
 * ({@link LowPrecisionWeight#forward(float[], int)}: int8 streamed, bfloat16 by oneDNN), and the layer norms, biases, ReLU, residuals and the attention
 * over the KV cache, which cost microseconds on a few rows, run beside them. The cache stays in TensorFlow arrays
 * (prefill, beam reordering and row joins work on them): the attention reads them in place
 * ({@link TfFunctions#memory}), and the grown open block is one new array pair per layer. Per layer the step thus
 * calls the engine twice (two small arrays made) instead of the eager path's forty ops, or a TensorFlow function
 * whose call alone cost 1.2 to 1.6 ms.
 *
 * <pre>
 * per layer: h [B, D] -> layer norm -> qkv [B, 3D] (streamed) -> attention over the closed history keysT [B, N, H, C],
 *            values [B, N, C, H], the open block [B, N, H, O], [B, N, O, H] and the new position -> [B, D] -> out_proj
 *            (streamed) + h -> layer norm -> fc1 (streamed), ReLU -> fc2 (streamed) + residual -> h [B, D]
 * </pre>
 *
 * Computes what the eager layer computes (pre-LN, fused q/k/v with the scale in the query weights, ReLU, biases);
 * it applies where {@link OptTfDecodeLayer#applies} does.
 */
final class OptStreamedDecodeLayer {
    /** A layer's norms, in Java. */
    private record Norms(float[] ln1g, float[] ln1b, float[] ln2g, float[] ln2b) {}

    private static final ThreadLocal<float[]> OPEN_KEYS = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> OPEN_VALUES = ThreadLocal.withInitial(() -> new float[0]);

    private final OptConfig config;
    private final Norms[] norms;
    private final float[] finalG; // the decoder's final norm, or null where it has none
    private final float[] finalB;
    private final float eps;

    private OptStreamedDecodeLayer(OptConfig config, Norms[] norms, float[] finalG, float[] finalB) {
        this.config = config;
        this.norms = norms;
        this.finalG = finalG;
        this.finalB = finalB;
        this.eps = (float) OptConfig.LAYER_NORM_EPS;
    }

    static OptStreamedDecodeLayer build(OptConfig c, List<OptForCausalLM.DecoderLayer> layers, LayerNorm finalLayerNorm) {
        Norms[] norms = new Norms[layers.size()];
        for (int i = 0; i < norms.length; i++) {
            LayerNorm a = layers.get(i).selfAttnLayerNorm();
            LayerNorm f = layers.get(i).finalLayerNorm();
            norms[i] = new Norms(a.weight().toFloatArray(), a.bias().toFloatArray(), f.weight().toFloatArray(), f.bias().toFloatArray());
        }
        return finalLayerNorm == null ? new OptStreamedDecodeLayer(c, norms, null, null)
                : new OptStreamedDecodeLayer(c, norms, finalLayerNorm.weight().toFloatArray(), finalLayerNorm.bias().toFloatArray());
    }

    /** The decoder's final layer norm on h [B, D] in place (nothing where the decoder has none). */
    void finalNorm(float[] h, int b) {
        if (finalG != null) {
            layerNorm(h, b, config.hiddenSize(), finalG, finalB, h);
        }
    }

    /**
     * Runs every layer on h [B, D] for one new position per row; the cache grows by that position.
     *
     * @param mask additive [B, 1, 1, S]
     * @return h [B, D] after the last layer (before the final norm)
     */
    float[] forward(List<OptForCausalLM.DecoderLayer> layers, NDArray x, NDArray mask, KvCache cache) {
        NDManager scope = x.getManager();
        int b = Math.toIntExact(x.getShape().get(0));
        int d = config.hiddenSize();
        float[] h = x.toFloatArray();
        float[] additive = mask.toFloatArray(); // (B, S)
        float[] a = new float[h.length];
        float[] ctx = new float[h.length];
        for (int i = 0; i < layers.size(); i++) {
            OptForCausalLM.DecoderLayer l = layers.get(i);
            Norms nm = norms[i];
            layerNorm(h, b, d, nm.ln1g(), nm.ln1b(), a);
            float[] qkv = l.selfAttn().qkv().lowPrecision().forward(a, b);                    // (B, 3D)
            attention(scope, qkv, b, additive, cache, i, ctx);                                 // (B, D)
            float[] attn = l.selfAttn().out().lowPrecision().forward(ctx, b);                 // (B, D)
            for (int j = 0; j < h.length; j++) {
                h[j] += attn[j];
            }
            layerNorm(h, b, d, nm.ln2g(), nm.ln2b(), a);
            float[] f = l.fc1().lowPrecision().forward(a, b);                                  // (B, F)
            for (int j = 0; j < f.length; j++) {
                f[j] = Math.max(f[j], 0f);
            }
            float[] f2 = l.fc2().lowPrecision().forward(f, b);                                 // (B, D)
            for (int j = 0; j < h.length; j++) {
                h[j] += f2[j];
            }
        }
        return h;
    }

    /**
     * One new position per row attends to the layer's cached history and to itself: ctx [B, D] from qkv [B, 3D]
     * (the query already scaled); the open block grows by the new key and value.
     */
    private void attention(NDManager scope, float[] qkv, int b, float[] additive, KvCache cache, int layer, float[] ctx) {
        int n = config.numAttentionHeads();
        int hd = config.headDim();
        int d = config.hiddenSize();
        NDArray closedK = cache.closedKeysT(layer);   // (B, N, H, C)
        NDArray openK = cache.openKeysT(layer);       // (B, N, H, O) or null
        int c = Math.toIntExact(closedK.getShape().get(3));
        int o = openK == null ? 0 : Math.toIntExact(openK.getShape().get(3));
        int s = c + o + 1;
        ByteBuffer kc = TfEager.memory(closedK);                                      // read in place
        ByteBuffer vc = TfEager.memory(cache.closedValues(layer));                    // (B, N, C, H)
        WeightStreaming kernels = WeightStreaming.get();
        FloatBuffer ko = openK == null ? null : TfEager.memory(openK).asFloatBuffer();
        FloatBuffer vo = openK == null ? null : TfEager.memory(cache.openValues(layer)).asFloatBuffer(); // (B, N, O, H)
        // the grown open block, every value written below; the engine copies it, so this thread's arrays are reused
        // (8 rows' block reaches 1.4 MB: allocated each layer, each over G1's humongous size, they set off old-space
        // collections at every step)
        int blockSize = b * n * hd * (o + 1);
        float[] newK = OPEN_KEYS.get();   // (B, N, H, O+1)
        float[] newV = OPEN_VALUES.get(); // (B, N, O+1, H)
        if (newK.length < blockSize) {
            newK = new float[blockSize];
            newV = new float[blockSize];
            OPEN_KEYS.set(newK);
            OPEN_VALUES.set(newV);
        }
        float[] scores = new float[s];
        float[] q = new float[hd];
        float[] weights = new float[c];
        float[] openKeys = new float[hd * o]; // one head's open keys [H, O], read in one bulk copy
        for (int r = 0; r < b; r++) {
            for (int head = 0; head < n; head++) {
                int bn = r * n + head;
                int qo = r * 3 * d + head * hd;
                System.arraycopy(qkv, qo, q, 0, hd);
                java.util.Arrays.fill(scores, c, s, 0f);
                // the closed history's keys transposed [H, C], read in place; then the open block and the new key
                kernels.keyScores(kc, bn * hd * c, hd, c, q, scores);
                if (o > 0) {
                    ko.get(bn * hd * o, openKeys, 0, hd * o);
                }
                for (int k = 0; k < hd; k++) {
                    float qk = q[k];
                    int nkBase = (bn * hd + k) * (o + 1);
                    if (o > 0) {
                        System.arraycopy(openKeys, k * o, newK, nkBase, o);
                        for (int p = 0; p < o; p++) {
                            scores[c + p] += qk * openKeys[k * o + p];
                        }
                    }
                    float key = qkv[qo + d + k];
                    newK[nkBase + o] = key;
                    scores[c + o] += qk * key;
                }
                // additive mask, then softmax in float32 as the engine's
                float max = Float.NEGATIVE_INFINITY;
                for (int p = 0; p < s; p++) {
                    scores[p] += additive[r * s + p];
                    max = Math.max(max, scores[p]);
                }
                float sum = 0f;
                for (int p = 0; p < s; p++) {
                    scores[p] = (float) Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                int co = r * d + head * hd;
                java.util.Arrays.fill(ctx, co, co + hd, 0f);
                for (int p = 0; p < c; p++) {
                    weights[p] = scores[p] / sum;
                }
                kernels.weightedValues(vc, bn * c * hd, c, hd, weights, ctx, co);
                if (o > 0) { // the open values [O, H] are the first O rows of the grown block [O+1, H]
                    vo.get(bn * o * hd, newV, bn * (o + 1) * hd, o * hd);
                }
                for (int p = 0; p < o; p++) {
                    float w = scores[c + p] / sum;
                    int nvBase = (bn * (o + 1) + p) * hd;
                    for (int k = 0; k < hd; k++) {
                        ctx[co + k] += w * newV[nvBase + k];
                    }
                }
                float w = scores[c + o] / sum;
                int nvBase = (bn * (o + 1) + o) * hd;
                for (int k = 0; k < hd; k++) {
                    float value = qkv[qo + 2 * d + k];
                    newV[nvBase + k] = value;
                    ctx[co + k] += w * value;
                }
            }
        }
        cache.setOpen(layer, scope.create(FloatBuffer.wrap(newK, 0, blockSize), new Shape(b, n, hd, o + 1)),
                scope.create(FloatBuffer.wrap(newV, 0, blockSize), new Shape(b, n, o + 1, hd)));
    }

    /** torch.nn.LayerNorm over rows of {@code d}: the biased variance, float32 like the engine's. */
    private void layerNorm(float[] x, int rows, int d, float[] g, float[] beta, float[] out) {
        for (int r = 0; r < rows; r++) {
            int o = r * d;
            double sum = 0;
            for (int k = 0; k < d; k++) {
                sum += x[o + k];
            }
            float mean = (float) (sum / d);
            double sq = 0;
            for (int k = 0; k < d; k++) {
                float c = x[o + k] - mean;
                sq += c * c;
            }
            float inv = (float) (1.0 / Math.sqrt((float) (sq / d) + eps));
            for (int k = 0; k < d; k++) {
                out[o + k] = (x[o + k] - mean) * inv * g[k] + beta[k];
            }
        }
    }
}
