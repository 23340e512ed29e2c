package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.nn.tf.TfEager;
import io.blip2stream.model.weights.Precision;
import org.bytedeco.dnnl.IntMemoryMap;
import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.dnnl.matmul;
import org.bytedeco.dnnl.memory;
import org.bytedeco.dnnl.post_ops;
import org.bytedeco.dnnl.primitive_attr;
import org.bytedeco.dnnl.softmax_forward;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

import java.nio.ByteBuffer;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;

/**
 * Unmasked multi-head self-attention in float32 as three oneDNN primitives that read q, k and v where the fused qkv
 * projection left them and write the context with its heads already merged: {@code softmax(q k^T * scale) v}.
 * The engine's version slices q, k and v out of [B, S, 3, N, H] and transposes each (three copies), then transposes
 * the context back (a fourth): at ViT-g's 257 tokens those copies and the eager ops around them took a third of a
 * bfloat16 image encoding (480 ms of 1345 at batch 1), against 50 ms for this.
 *
 * <pre>
 * qkv [B, S, 3, N, H]: q = qkv[:, :, 0] viewed as [B, N, S, H] (strides S*3NH, H, 3NH, 1), k^T = qkv[:, :, 1] as
 * [B, N, H, S] (strides S*3NH, H, 1, 3NH), v = qkv[:, :, 2] as q
 * scores [B, N, S, S] = q k^T * scale (a post-op), softmax over the last axis in place
 * ctx [B, S, N, H] = scores v, written through strides (S*NH, H, NH, 1) of [B, N, S, H]: merged heads [B, S, N*H]
 * </pre>
 */
public final class OneDnnAttention {
    private static final OneDnn.Plans<Key, Plan> PLANS = new OneDnn.Plans<>();

    private record Key(int b, int s, int n, int h, float scale) {}

    private record Plan(memory.desc q, memory.desc kT, memory.desc scores, memory.desc ctx, matmul qk, softmax_forward softmax,
                        matmul pv) {}

    private OneDnnAttention() {}

    /** Whether a model loaded in {@code p} into {@code m} runs its unmasked self-attention here (see {@link OneDnn#serves}). */
    public static boolean serves(Precision p, NDManager m) {
        return OneDnn.serves(p, m);
    }

    /**
     * @param qkv   [B, S, 3 * N * H] float32, the fused projection's output (q, k, v, each N heads of H)
     * @param heads N
     * @return the context [B, S, N * H], in qkv's manager
     */
    public static NDArray selfAttention(NDArray qkv, int heads, float scale) {
        Shape shape = qkv.getShape();
        int b = Math.toIntExact(shape.get(0));
        int s = Math.toIntExact(shape.get(1));
        long width = shape.get(2);
        if (shape.dimension() != 3 || width % (3L * heads) != 0 || qkv.getDataType() != DataType.FLOAT32) {
            throw new IllegalArgumentException("qkv " + shape + " " + qkv.getDataType() + " for " + heads + " heads");
        }
        int h = Math.toIntExact(width / 3 / heads);
        long nh = (long) heads * h;
        Plan p = PLANS.get(new Key(b, s, heads, h, scale), OneDnnAttention::plan);
        NDArray ctx = qkv.getManager().create(new Shape(b, s, nh), DataType.FLOAT32); // written once below, then only read
        ByteBuffer in = TfEager.memory(qkv);
        ByteBuffer out = TfEager.memory(ctx);
        ByteBuffer scores = OneDnn.scratch(OneDnn.Scratch.SCORES, (long) b * heads * s * s * 4); // reused across layers
        var e = OneDnn.cpu();
        var st = OneDnn.stream();
        try (Pointer base = new BytePointer(in);
             Pointer kBase = new BytePointer(in).position(nh * 4);
             Pointer vBase = new BytePointer(in).position(2 * nh * 4);
             Pointer sp = new BytePointer(scores);
             Pointer op = new BytePointer(out);
             memory q = new memory(p.q(), e, base);
             memory k = new memory(p.kT(), e, kBase);
             memory v = new memory(p.q(), e, vBase);
             memory sc = new memory(p.scores(), e, sp);
             memory c = new memory(p.ctx(), e, op);
             IntMemoryMap a1 = new IntMemoryMap();
             IntMemoryMap a2 = new IntMemoryMap();
             IntMemoryMap a3 = new IntMemoryMap()) {
            a1.put(DNNL_ARG_SRC, q);
            a1.put(DNNL_ARG_WEIGHTS, k);
            a1.put(DNNL_ARG_DST, sc);
            p.qk().execute(st, a1);
            a2.put(DNNL_ARG_SRC, sc);
            a2.put(DNNL_ARG_DST, sc);
            p.softmax().execute(st, a2);
            a3.put(DNNL_ARG_SRC, sc);
            a3.put(DNNL_ARG_WEIGHTS, v);
            a3.put(DNNL_ARG_DST, c);
            p.pv().execute(st, a3);
            st._wait();
        }
        return ctx;
    }

    private static Plan plan(Key key) {
        long b = key.b();
        long s = key.s();
        long n = key.n();
        long h = key.h();
        long row = 3 * n * h;                     // one token's q, k and v
        var e = OneDnn.cpu();
        memory.desc q = new memory.desc(new long[] {b, n, s, h}, memory.data_type.f32, new long[] {s * row, h, row, 1});
        memory.desc kT = new memory.desc(new long[] {b, n, h, s}, memory.data_type.f32, new long[] {s * row, h, 1, row});
        memory.desc scores = new memory.desc(new long[] {b, n, s, s}, memory.data_type.f32, memory.format_tag.abcd);
        memory.desc ctx = new memory.desc(new long[] {b, n, s, h}, memory.data_type.f32, new long[] {s * n * h, h, n * h, 1});
        primitive_attr scaled = new primitive_attr();
        post_ops ops = new post_ops();
        ops.append_eltwise(dnnl.algorithm.eltwise_linear, key.scale(), 0f);
        scaled.set_post_ops(ops);
        return new Plan(q, kT, scores, ctx,
                new matmul(new matmul.primitive_desc(e, q, kT, scores, scaled, false)),
                new softmax_forward(new softmax_forward.primitive_desc(e, dnnl.prop_kind.forward_inference,
                        dnnl.algorithm.softmax_accurate, scores, scores, 3)),
                new matmul(new matmul.primitive_desc(e, scores, q, ctx)));
    }
}
