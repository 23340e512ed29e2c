package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.weights.Weights;

/**
 * torch.nn.LayerNorm over the last axis. weight and bias [D], or null when the norm has no affine part;
 * {@code epsArray} holds eps as a scalar array in the model's manager.
 */
public record LayerNorm(NDArray weight, NDArray bias, float eps, NDArray epsArray) {

    /** A norm without learned scale and shift ({@code elementwise_affine=False}). */
    public static LayerNorm plain(NDManager m, double eps) {
        return new LayerNorm(null, null, (float) eps, m.create((float) eps));
    }

    public static LayerNorm load(Weights w, NDManager m, String prefix, long dim, double eps) {
        NDArray g = w.contains(prefix + ".weight") ? w.load(m, prefix + ".weight", dim) : null;
        NDArray b = w.contains(prefix + ".bias") ? w.load(m, prefix + ".bias", dim) : null;
        if (g == null && b == null) {
            // neither present: report the weight as missing
            w.load(m, prefix + ".weight", dim);
        }
        return new LayerNorm(g, b, (float) eps, m.create((float) eps));
    }

    public NDArray forward(NDArray x) {
        return Ops.layerNorm(x, weight, bias, eps, epsArray);
    }
}
