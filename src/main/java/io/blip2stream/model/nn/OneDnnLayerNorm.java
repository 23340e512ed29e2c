package io.blip2stream.model.nn;

import org.bytedeco.dnnl.IntMemoryMap;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.layer_normalization_forward;
import org.bytedeco.dnnl.memory;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

import java.nio.ByteBuffer;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SCALE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SHIFT;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_inference;
import static org.bytedeco.dnnl.global.dnnl.dnnl_layer_normalization_forward_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_use_scale;
import static org.bytedeco.dnnl.global.dnnl.dnnl_use_shift;

/**
 * torch.nn.LayerNorm over rows of D in float32 as one oneDNN primitive (mean, biased variance, scale and shift in
 * one pass over x), where a model's weights are packed for oneDNN: TensorFlow's eager ops take nine passes, which
 * at a ViT-g block's [257, 1408] cost more than its projection. Float32 throughout, as the issue asks of layer
 * norms; its sums run in another order than the engine's, so float32 models keep {@link Ops#layerNorm}.
 */
final class OneDnnLayerNorm {
    private final int d;
    private final float eps;
    private final ByteBuffer scale; // gamma [D] float32, native order
    private final ByteBuffer shift; // beta [D]
    private final OneDnn.Plans<Integer, Plan> plans = new OneDnn.Plans<>();

    private record Plan(memory.desc data, memory.desc affine, layer_normalization_forward norm) {}

    OneDnnLayerNorm(float[] gamma, float[] beta, float eps) {
        if (gamma.length != beta.length) {
            throw new IllegalArgumentException("layer norm weight [" + gamma.length + "] and bias [" + beta.length + "]");
        }
        this.d = gamma.length;
        this.eps = eps;
        this.scale = OneDnn.floats(gamma);
        this.shift = OneDnn.floats(beta);
    }

    /** y [rows, D] = the norm of x [rows, D]; both float32, native-order direct buffers (or CPU tensors' memory). */
    void forward(ByteBuffer x, int rows, ByteBuffer y) {
        long bytes = (long) rows * d * 4;
        if (rows <= 0 || x.capacity() < bytes || y.capacity() < bytes || !x.isDirect() || !y.isDirect()) {
            throw new IllegalArgumentException("layer norm of " + rows + " x " + d + ": x of " + x.capacity() + " bytes, y of " + y.capacity());
        }
        Plan p = plans.get(rows, this::plan);
        var e = OneDnn.cpu();
        var s = OneDnn.stream();
        try (Pointer xp = new BytePointer(x); Pointer yp = new BytePointer(y);
             Pointer gp = new BytePointer(scale); Pointer bp = new BytePointer(shift);
             memory src = new memory(p.data(), e, xp);
             memory dst = new memory(p.data(), e, yp);
             memory g = new memory(p.affine(), e, gp);
             memory b = new memory(p.affine(), e, bp);
             IntMemoryMap args = new IntMemoryMap()) {
            args.put(DNNL_ARG_SRC, src);
            args.put(DNNL_ARG_DST, dst);
            args.put(DNNL_ARG_SCALE, g);
            args.put(DNNL_ARG_SHIFT, b);
            p.norm().execute(s, args);
            s._wait();
        }
    }

    private Plan plan(int rows) {
        memory.desc data = OneDnn.desc(rows, d, memory.data_type.f32, memory.format_tag.ab);
        memory.desc affine = new memory.desc(new long[] {d}, memory.data_type.f32, memory.format_tag.a);
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        // the C API: C++'s constructor takes one normalization_flags value, and scale and shift are two
        int status = dnnl_layer_normalization_forward_primitive_desc_create(pd, OneDnn.cpu().get(), dnnl_forward_inference,
                data.get(), data.get(), null, eps, dnnl_use_scale | dnnl_use_shift, null);
        if (status != 0) {
            throw new IllegalStateException("oneDNN layer norm of " + rows + " x " + d + ": status " + status);
        }
        return new Plan(data, affine, new layer_normalization_forward(new layer_normalization_forward.primitive_desc(pd)));
    }
}
