package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;

/**
 * The small set of tensor operations the model code is written in. Each one runs on both DJL engines used here
 * (TensorFlow and PyTorch): matMul with a broadcast 2-D weight, elementwise arithmetic, {@code erf}, {@code tanh},
 * {@code mean} over the last axis, {@code softmax}, reshape, transpose, concat and slicing. DJL's TensorFlow
 * engine lacks {@code layerNorm}, {@code gelu} and every gather, so those are built here from the others, and row
 * lookups (embeddings) are done in Java.
 *
 * <p>Results are attached to the manager of the first operand: call every op on the activation, never on a
 * weight, so that scratch tensors stay in the caller's scope.
 */
public final class Ops {
    private static final float SQRT_HALF = (float) Math.sqrt(0.5);
    private static final float SQRT_2_OVER_PI = (float) Math.sqrt(2.0 / Math.PI);

    private Ops() {}

    /**
     * {@code x @ wT + b}; x [..., in], wT [in, out], b [out] or null. Activations of more than two axes are
     * multiplied as one 2-D matrix [rows, in]: both engines run a plain GEMM on that (a batched matmul
     * broadcasting the weight is slower: 20% on PyTorch for a ViT layer, a third on TensorFlow for the LM head).
     */
    public static NDArray linear(NDArray x, NDArray wT, NDArray b) {
        Shape s = x.getShape();
        NDArray y;
        if (s.dimension() > 2) {
            long in = s.get(s.dimension() - 1);
            long out = wT.getShape().get(1);
            long[] dims = s.getShape().clone();
            dims[dims.length - 1] = out;
            y = x.reshape(s.size() / in, in).matMul(wT);
            y = (b == null ? y : y.add(b)).reshape(dims);
        } else {
            y = x.matMul(wT);
            y = b == null ? y : y.add(b);
        }
        return y;
    }

    /** Whether {@code x} lives on DJL's PyTorch engine, whose native layer norm, GELU and ReLU are used. */
    public static boolean isPyTorch(NDArray x) {
        return "PyTorch".equals(x.getManager().getEngine().getEngineName());
    }

    /**
     * LayerNorm over the last axis with the biased variance, as torch.nn.LayerNorm; {@code eps} is a scalar
     * array (a Java float would cost TensorFlow a constant op per call). PyTorch runs its own fused kernel
     * (one op instead of nine: 0.05 against 0.26 ms for a row of 768).
     */
    public static NDArray layerNorm(NDArray x, NDArray gamma, NDArray beta, float eps, NDArray epsArray) {
        Shape s = x.getShape();
        int last = s.dimension() - 1;
        if (gamma != null && beta != null && isPyTorch(x)) {
            return x.getNDArrayInternal().layerNorm(x, new Shape(s.get(last)), gamma, beta, eps).singletonOrThrow();
        }
        NDArray mean = x.mean(new int[] {last}, true);
        NDArray centred = x.sub(mean);
        NDArray var = centred.mul(centred).mean(new int[] {last}, true);
        NDArray y = centred.div(var.add(epsArray).sqrt());
        if (gamma != null) {
            y = y.mul(gamma);
        }
        if (beta != null) {
            y = y.add(beta);
        }
        return y;
    }

    /** T5's RMS norm: {@code x / sqrt(mean(x^2) + eps) * gamma}, no centring, no bias. */
    public static NDArray rmsNorm(NDArray x, NDArray gamma, float eps) {
        int last = x.getShape().dimension() - 1;
        NDArray var = x.mul(x).mean(new int[] {last}, true);
        return x.div(var.add(eps).sqrt()).mul(gamma);
    }

    /** Exact GELU, {@code 0.5 x (1 + erf(x / sqrt 2))} (transformers' "gelu"); PyTorch's own kernel there. */
    public static NDArray gelu(NDArray x) {
        if (isPyTorch(x)) {
            return x.getNDArrayInternal().gelu();
        }
        return x.mul(SQRT_HALF).erf().add(1f).mul(x).mul(0.5f);
    }

    /** The tanh approximation of GELU (transformers' "gelu_new"). */
    public static NDArray geluNew(NDArray x) {
        if (isPyTorch(x)) { // the same products, with constants that autograd may keep for the backward pass (mulScalar)
            NDArray inner = mulScalar(mulScalar(x.mul(x).mul(x), 0.044715f).add(x), SQRT_2_OVER_PI);
            return mulScalar(inner.tanh().add(1f).mul(x), 0.5f);
        }
        NDArray inner = x.mul(x).mul(x).mul(0.044715f).add(x).mul(SQRT_2_OVER_PI);
        return inner.tanh().add(1f).mul(x).mul(0.5f);
    }

    /** max(x, 0) as the engine's own ReLU op (no scalar constant). */
    public static NDArray relu(NDArray x) {
        return x.getNDArrayInternal().relu();
    }

    /** The activation named by a Hugging Face config ({@code hidden_act}, {@code activation_function}). */
    public static NDArray activation(String name, NDArray x) {
        switch (name) {
            case "gelu":
                return gelu(x);
            case "gelu_new":
            case "gelu_pytorch_tanh":
                return geluNew(x);
            case "relu":
                return relu(x);
            case "quick_gelu":
                return x.mul(x.mul(1.702f).neg().exp().add(1f).pow(-1f));
            default:
                throw new IllegalArgumentException("activation '" + name + "' is not supported");
        }
    }

    /** [B, S, N*H] to [B, N, S, H]. */
    public static NDArray splitHeads(NDArray x, int heads) {
        Shape s = x.getShape();
        long b = s.get(0);
        long seq = s.get(1);
        long d = s.get(2);
        return x.reshape(b, seq, heads, d / heads).transpose(0, 2, 1, 3);
    }

    /** [B, S, N*H] to keys transposed for attention, [B, N, H, S]. */
    public static NDArray splitHeadsTransposed(NDArray x, int heads) {
        Shape s = x.getShape();
        return x.reshape(s.get(0), s.get(1), heads, s.get(2) / heads).transpose(0, 2, 3, 1);
    }

    /** [B, N, S, H] to [B, S, N*H]. */
    public static NDArray mergeHeads(NDArray x) {
        Shape s = x.getShape();
        return x.transpose(0, 2, 1, 3).reshape(s.get(0), s.get(2), s.get(1) * s.get(3));
    }

    /**
     * Scaled dot-product attention. q [B, N, T, H], keys already transposed kT [B, N, H, S], v [B, N, S, H],
     * additive mask broadcastable to [B, N, T, S] or null; returns [B, N, T, H]. Keys come transposed so that a
     * KV cache can keep them that way and no op is ever called on a cached array.
     */
    public static NDArray attention(NDArray q, NDArray kT, NDArray v, NDArray additiveMask, float scale) {
        NDArray scores = q.matMul(kT); // (B, N, T, S)
        if (scale != 1f) {
            scores = mulScalar(scores, scale);
        }
        if (additiveMask != null) {
            scores = scores.add(additiveMask);
        }
        return scores.softmax(-1).matMul(v); // (B, N, T, H)
    }

    /**
     * x * s where autograd may keep s for the backward pass. DJL's PyTorch {@code mul(Number)} builds the scalar on a
     * Java buffer (torch's from_blob, no copy) and closes it at once, so the buffer can be collected before the
     * backward pass reads it: gradients then came out as garbage (1e30, NaN) whenever a GC ran in between. Here the
     * scalar lives as long as {@code x}'s manager.
     */
    public static NDArray mulScalar(NDArray x, float s) {
        if (!isPyTorch(x)) {
            return x.mul(s);
        }
        NDArray c = x.getManager().create(s);
        return x.mul(c);
    }

    /** A float32 array of the given shape from Java values, in {@code manager}. */
    public static NDArray create(NDManager manager, float[] data, long... shape) {
        return manager.create(data, new Shape(shape));
    }
}
