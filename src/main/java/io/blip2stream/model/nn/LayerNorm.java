package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import io.blip2stream.model.nn.tf.TfEager;
import io.blip2stream.model.weights.Weights;

/**
 * torch.nn.LayerNorm over the last axis. weight and bias [D], or null when the norm has no affine part;
 * {@code epsArray} holds eps as a scalar array in the model's manager. In a model whose weights are packed for
 * oneDNN (bfloat16 or int8 on a CPU), an affine norm runs as one oneDNN primitive ({@code fused}); float32 models
 * keep the engine's ops, so every parity test is unchanged.
 *
 * @param fused the same norm in oneDNN, or null
 */
public record LayerNorm(NDArray weight, NDArray bias, float eps, NDArray epsArray, OneDnnLayerNorm fused) {

    /** A norm without learned scale and shift ({@code elementwise_affine=False}). */
    public static LayerNorm plain(NDManager m, double eps) {
        return new LayerNorm(null, null, (float) eps, m.create((float) eps), null);
    }

    public static LayerNorm load(Weights w, NDManager m, String prefix, long dim, double eps) {
        NDArray g = w.contains(prefix + ".weight") ? w.load(m, prefix + ".weight", dim) : null;
        NDArray b = w.contains(prefix + ".bias") ? w.load(m, prefix + ".bias", dim) : null;
        if (g == null && b == null) {
            // neither present: report the weight as missing
            w.load(m, prefix + ".weight", dim);
        }
        boolean oneDnn = g != null && b != null && OneDnn.serves(w.precision(), m);
        OneDnnLayerNorm fused = oneDnn ? new OneDnnLayerNorm(g.toFloatArray(), b.toFloatArray(), (float) eps) : null;
        return new LayerNorm(g, b, (float) eps, m.create((float) eps), fused);
    }

    public NDArray forward(NDArray x) {
        if (fused != null) {
            NDArray x32 = x.getDataType() == DataType.FLOAT32 ? x : x.toType(DataType.FLOAT32, false);
            int rows = Math.toIntExact(x.getShape().size() / weight.getShape().get(0));
            // a new array no op has read yet: written once here, then only read, as TensorFlow expects of its tensors
            NDArray y = x.getManager().create(x.getShape(), DataType.FLOAT32);
            fused.forward(TfEager.memory(x32), rows, TfEager.memory(y));
            return y;
        }
        return Ops.layerNorm(x, weight, bias, eps, epsArray);
    }
}
