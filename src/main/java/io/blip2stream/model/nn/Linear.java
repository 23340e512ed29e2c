package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.weights.Precision;
import io.blip2stream.model.weights.Weights;

import java.util.List;

/**
 * torch.nn.Linear: {@code y = x W^T + b}. In float32 the weight is an engine array stored transposed, [in, out], so
 * that the forward pass is a single matMul with the activation on the left; in bfloat16 or int8 (the precision of
 * the {@link Weights} it is loaded through) it is a {@link LowPrecisionWeight}, [out, in], and {@code weightT} is null.
 *
 * @param weightT [in, out], or null when {@code lowPrecision} holds the weight
 * @param bias    [out], or null
 * @param lowPrecision the weight in bfloat16 or int8 (with the bias), or null in float32
 */
public record Linear(NDArray weightT, NDArray bias, LowPrecisionWeight lowPrecision) {

    /** A float32 layer. */
    public Linear(NDArray weightT, NDArray bias) {
        this(weightT, bias, null);
    }

    /** Loads {@code prefix.weight} [out, in] and, if present or required, {@code prefix.bias} [out]. */
    public static Linear load(Weights w, NDManager m, String prefix, long in, long out, boolean bias) {
        NDArray b = bias ? w.load(m, prefix + ".bias", out) : null;
        if (w.precision() != Precision.FLOAT32) {
            LowPrecisionWeight low = LowPrecisionWeight.load(w, m, w.precision(), in, List.of(new LowPrecisionWeight.Part(prefix + ".weight", out, 1f)));
            return new Linear(null, b, low.withBias(b));
        }
        NDArray t = w.loadTransposed(m, prefix + ".weight", out, in); // (in, out)
        return new Linear(t, b);
    }

    /** Like {@link #load} with a bias that may or may not be in the checkpoint. */
    public static Linear loadOptionalBias(Weights w, NDManager m, String prefix, long in, long out) {
        return load(w, m, prefix, in, out, w.contains(prefix + ".bias"));
    }

    /** This layer with another bias (a checkpoint that stores the bias in parts). */
    public Linear withBias(NDArray b) {
        return lowPrecision != null ? new Linear(null, b, lowPrecision.withBias(b)) : new Linear(weightT, b);
    }

    /** The precision the weight is kept in. */
    public Precision precision() {
        return lowPrecision == null ? Precision.FLOAT32 : lowPrecision.precision();
    }

    public NDArray forward(NDArray x) {
        return lowPrecision != null ? lowPrecision.forward(x) : Ops.linear(x, weightT, bias);
    }

    /**
     * {@code act(x W^T + b) + residual}, a block's projection with what follows it: {@code activation} a Hugging Face
     * {@code hidden_act} name or null, {@code residual} [..., out] or null. In float32 the same ops as written out
     * (so every parity test is unchanged); with a weight packed for oneDNN, one fused pass.
     */
    public NDArray forward(NDArray x, String activation, NDArray residual) {
        if (lowPrecision != null) {
            return lowPrecision.forward(x, activation, residual);
        }
        NDArray y = Ops.linear(x, weightT, bias);
        if (activation != null) {
            y = Ops.activation(activation, y);
        }
        return residual == null ? y : y.add(residual);
    }
}
