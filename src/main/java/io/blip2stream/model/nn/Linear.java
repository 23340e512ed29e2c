package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.weights.Weights;

/**
 * torch.nn.Linear: {@code y = x W^T + b}. The weight is stored transposed, [in, out], so that the forward pass is
 * a single matMul with the activation on the left.
 *
 * @param weightT [in, out]
 * @param bias    [out], or null
 */
public record Linear(NDArray weightT, NDArray bias) {

    /** Loads {@code prefix.weight} [out, in] and, if present or required, {@code prefix.bias} [out]. */
    public static Linear load(Weights w, NDManager m, String prefix, long in, long out, boolean bias) {
        NDArray t = w.loadTransposed(m, prefix + ".weight", out, in); // (in, out)
        NDArray b = bias ? w.load(m, prefix + ".bias", out) : null;
        return new Linear(t, b);
    }

    /** Like {@link #load} with a bias that may or may not be in the checkpoint. */
    public static Linear loadOptionalBias(Weights w, NDManager m, String prefix, long in, long out) {
        return load(w, m, prefix, in, out, w.contains(prefix + ".bias"));
    }

    public NDArray forward(NDArray x) {
        return Ops.linear(x, weightT, bias);
    }
}
