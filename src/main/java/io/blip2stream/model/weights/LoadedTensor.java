package io.blip2stream.model.weights;

import ai.djl.ndarray.NDArray;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An array a model computes with, and the checkpoint tensors it holds: one tensor as stored or transposed
 * ({@link Weights#loadTransposed}), or several concatenated along an axis with a scale folded in (OPT's fused
 * q/k/v). Training updates the array; {@link #toCheckpoint} gives the tensors back in the checkpoint's layout.
 *
 * @param array the array as the model holds it: [rest, shape[0]] when transposed, else the checkpoint's shape
 * @param parts the checkpoint tensors inside it
 */
public record LoadedTensor(NDArray array, List<Part> parts) {

    /**
     * One checkpoint tensor in the array: its name and shape in the checkpoint, the range [from, to) it takes along
     * {@code axis} of the array (a 1-D or 2-D array), the scale it was multiplied by, and whether the array holds
     * it transposed.
     */
    public record Part(String name, long[] shape, int axis, long from, long to, float scale, boolean transposed) {}

    /** A name for the array: its first tensor's name, with a {@code +} per further fused tensor. */
    public String key() {
        return parts.get(0).name() + "+".repeat(parts.size() - 1);
    }

    /** The tensors in the checkpoint's layout, from the array's current values. */
    public Map<String, Tensor> toCheckpoint() {
        float[] v = array.toFloatArray();
        long[] dims = array.getShape().getShape();
        int rows = dims.length == 1 ? 1 : (int) dims[0];
        int cols = (int) (v.length / Math.max(1, rows));
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Part p : parts) {
            float[] slice;
            int sliceRows;
            int sliceCols;
            if (parts.size() == 1) {
                slice = v;
                sliceRows = rows;
                sliceCols = cols;
            } else if (dims.length == 1 || p.axis() == 0) {
                // rows [from, to) of a [rows, cols] array, or a range of a 1-D one
                int per = dims.length == 1 ? 1 : cols;
                slice = java.util.Arrays.copyOfRange(v, (int) p.from() * per, (int) p.to() * per);
                sliceRows = (int) (p.to() - p.from());
                sliceCols = per;
            } else {
                sliceRows = rows;
                sliceCols = (int) (p.to() - p.from());
                slice = new float[sliceRows * sliceCols];
                for (int r = 0; r < rows; r++) {
                    System.arraycopy(v, r * cols + (int) p.from(), slice, r * sliceCols, sliceCols);
                }
            }
            if (p.scale() != 1f) {
                slice = slice.clone();
                for (int i = 0; i < slice.length; i++) {
                    slice[i] /= p.scale();
                }
            }
            if (p.transposed()) {
                float[] t = new float[slice.length];
                for (int r = 0; r < sliceRows; r++) {
                    for (int c = 0; c < sliceCols; c++) {
                        t[c * sliceRows + r] = slice[r * sliceCols + c];
                    }
                }
                slice = t;
            }
            out.put(p.name(), new Tensor(slice, p.shape().clone()));
        }
        return out;
    }

    /** A tensor's float32 values in row-major order and its shape. */
    public record Tensor(float[] values, long[] shape) {}

    /** All tensors of {@code loaded}, by checkpoint name. */
    public static Map<String, Tensor> checkpoint(List<LoadedTensor> loaded) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (LoadedTensor t : loaded) {
            out.putAll(t.toCheckpoint());
        }
        return out;
    }

    /** The names of every tensor in {@code loaded}. */
    public static List<String> names(List<LoadedTensor> loaded) {
        List<String> names = new ArrayList<>();
        for (LoadedTensor t : loaded) {
            t.parts().forEach(p -> names.add(p.name()));
        }
        return names;
    }
}
