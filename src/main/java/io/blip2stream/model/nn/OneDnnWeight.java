package io.blip2stream.model.nn;

import org.bytedeco.dnnl.IntMemoryMap;
import org.bytedeco.dnnl.engine;
import org.bytedeco.dnnl.matmul;
import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.dnnl.memory;
import org.bytedeco.dnnl.post_ops;
import org.bytedeco.dnnl.primitive_attr;
import org.bytedeco.dnnl.reorder;
import org.bytedeco.dnnl.stream;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_ATTR_SCALES;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC_1;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_FROM;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_TO;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;

/**
 * A bfloat16 weight [out, in] packed once, at load, into the blocked layout oneDNN's matmul reads on this CPU
 * ({@code brg_matmul:avx512_core_bf16}: pairs of bfloat16 along {@code in}, 64 outputs to a block), held in memory
 * oneDNN allocated: the weight's only copy. Each product converts x [rows, in] from float32 to bfloat16 (a oneDNN
 * reorder) and multiplies with float32 accumulation into y [rows, out] float32: the bfloat16 dot-product
 * instructions (AVX512_BF16) that neither Java's Vector API nor TensorFlow's eager ops reach with a weight packed
 * only once (TensorFlow 2.16's {@code _MklMatMul} repacks its weight on every call).
 *
 * <p>oneDNN is called directly through JavaCPP's presets ({@code org.bytedeco:dnnl}), not through TensorFlow; the
 * packed layout does not depend on the number of rows (checked for 1 to 1024 rows), so one copy serves a decode
 * step's one row, a prompt's tens and the vision encoder's 257 per image. A primitive per row count is kept
 * ({@link OneDnn.Plans}); oneDNN caches the compiled kernels across weights of one shape.
 *
 * <p>A product may carry its layer's epilogue, applied by oneDNN on the accumulators before they are stored
 * ({@link Epilogue}): {@code y = act(x W^T + b) + r}, the bias, an activation and a residual, so that a ViT block's
 * fc1 and GELU, or fc2 and the residual add, write their output once instead of three times.
 *
 * <p>An int8 weight ({@link #packInt8}) is packed the same way, symmetric with one float32 scale per output (oneDNN's
 * int8-weight matmul runs grouped scales 15-30 times slower), and oneDNN widens it to bfloat16 as it multiplies:
 * one copy for every row count. One row (a decode step of one sequence) does not go to oneDNN, whose widening
 * reads it at 16-24 GB/s here, but to {@link WeightStreaming#multiplyPackedInt8}, which reads the same packed bytes
 * in place at 36-42 GB/s, with x rounded to bfloat16 as oneDNN rounds it.
 *
 * <p>{@link #available()} says whether oneDNN loads here and multiplies bfloat16 with a JIT kernel (not its
 * reference loops, which are hundreds of times slower); {@code BLIP2_ONEDNN=off} turns it off.
 */
public final class OneDnnWeight implements AutoCloseable {

    private final int out;
    private final int in;
    private final memory.data_type type;  // bf16 or s8
    private final memory.desc packedDesc;
    private final memory packed;
    private final float[] scaleValues;    // s8: [out], one per output; else null
    private final ByteBuffer scaleBuffer; // s8: the same for oneDNN; else null
    private final ByteBuffer rowView;     // s8 in the layout WeightStreaming reads, for one row; else null
    private final int paddedIn;           // s8: in padded to the layout's blocks of 32
    private final OneDnn.Plans<PlanKey, Plan> plans = new OneDnn.Plans<>();
    private volatile boolean closed;

    /** An activation oneDNN applies to the product (and bias) before the residual, as an eltwise post-op. */
    public enum Activation {
        NONE(null), GELU_ERF(dnnl.algorithm.eltwise_gelu_erf), GELU_TANH(dnnl.algorithm.eltwise_gelu_tanh),
        RELU(dnnl.algorithm.eltwise_relu);

        private final dnnl.algorithm algorithm;

        Activation(dnnl.algorithm algorithm) {
            this.algorithm = algorithm;
        }

        /** The activation of a Hugging Face config's name ({@code hidden_act}), or null where oneDNN has none. */
        public static Activation of(String name) {
            return switch (name) {
                case "gelu" -> GELU_ERF;
                case "gelu_new", "gelu_pytorch_tanh" -> GELU_TANH;
                case "relu" -> RELU;
                default -> null;
            };
        }
    }

    /**
     * What follows the product: {@code y = act(x W^T + bias) + residual}.
     *
     * @param bias     [out] float32, a native-order direct buffer, or null
     * @param residual [rows, out] float32, a native-order direct buffer (or a CPU tensor's memory), or null
     */
    public record Epilogue(ByteBuffer bias, Activation activation, ByteBuffer residual) {
        public static final Epilogue NONE = new Epilogue(null, Activation.NONE, null);
    }

    private record PlanKey(int rows, boolean bias, Activation activation, boolean residual) {}

    /** The primitives for one row count and epilogue: x float32 to bfloat16, then the product. */
    private record Plan(memory.desc srcF32, memory.desc srcBf16, memory.desc dst, memory.desc bias, memory.desc scales,
                        reorder convert, matmul product) {}

    private OneDnnWeight(int out, int in, memory.data_type type, memory.desc packedDesc, memory packed, float[] scaleValues) {
        this.out = out;
        this.in = in;
        this.type = type;
        this.packedDesc = packedDesc;
        this.packed = packed;
        this.scaleValues = scaleValues;
        this.scaleBuffer = scaleValues == null ? null : OneDnn.floats(scaleValues);
        boolean readable = scaleValues != null && WeightStreaming.get().readsPackedInt8() && streamable(packedDesc);
        this.paddedIn = readable ? Math.toIntExact(packedDesc.get_padded_dims().get(0)) : in;
        this.rowView = readable ? new BytePointer(packed.get_data_handle()).capacity(packedDesc.get_size()).limit(packedDesc.get_size()).asByteBuffer()
                .order(ByteOrder.LITTLE_ENDIAN) : null;
    }

    /**
     * Whether an int8 layout is the one {@link WeightStreaming#multiplyPackedInt8} reads: inner blocks of 16 pairs
     * along {@code in} by 64 outputs ({@code 16a64b2a} of the [in, out] matrix), blocks of 32 inputs one after
     * another, 64 outputs' whole column of blocks contiguous. That is what oneDNN 3.8 picks on AVX512_BF16; on
     * another CPU it may differ, and one row then goes to oneDNN like the others.
     */
    static boolean streamable(memory.desc d) {
        if (d.get_inner_nblks() != 3) {
            return false;
        }
        LongPointer blocks = d.get_inner_blks();
        LongPointer axes = d.get_inner_idxs();
        LongPointer strides = d.get_strides();
        LongPointer padded = d.get_padded_dims();
        return blocks.get(0) == 16 && axes.get(0) == 0 && blocks.get(1) == 64 && axes.get(1) == 1 && blocks.get(2) == 2
                && axes.get(2) == 0 && padded.get(0) % 32 == 0 && padded.get(1) % 64 == 0 && strides.get(0) == 2048
                && strides.get(1) == 64 * padded.get(0) && d.get_size() == padded.get(0) * padded.get(1);
    }

    /** Whether bfloat16 weights are packed for oneDNN here (the CPU has a bfloat16 kernel and the natives load). */
    public static boolean available() {
        return OneDnn.available();
    }

    /** A line for logs: oneDNN's kernel, or why it is not used. */
    public static String describe() {
        return OneDnn.describe();
    }

    /**
     * Packs a bfloat16 weight given as [out, in] row-major bits (little-endian, 2 bytes a value, as a checkpoint
     * stores a Linear weight); {@code plain} may be freed once this returns.
     */
    public static OneDnnWeight pack(ByteBuffer plain, int out, int in) {
        if (plain.capacity() < (long) out * in * 2) {
            throw new IllegalArgumentException("bfloat16 weight of " + plain.capacity() + " bytes for [" + out + ", " + in + "]");
        }
        return pack(plain, out, in, memory.data_type.bf16, new primitive_attr(), null);
    }

    /**
     * Packs an int8 weight given as [out, in] row-major bytes (values in [-127, 127]) with one scale per output:
     * {@code W[o, k] = plain[o, k] * scales[o]}; {@code plain} may be freed once this returns.
     */
    public static OneDnnWeight packInt8(ByteBuffer plain, float[] scales, int out, int in) {
        if (plain.capacity() < (long) out * in || scales.length != out) {
            throw new IllegalArgumentException("int8 weight of " + plain.capacity() + " bytes and " + scales.length
                    + " scales for [" + out + ", " + in + "]");
        }
        return pack(plain, out, in, memory.data_type.s8, int8Attr(), scales.clone());
    }

    /**
     * Reorders W [out, in] row-major, which is the [in, out] matrix the product reads in format "ba" (out outermost),
     * into the layout oneDNN picks for a product of this type with these attributes (closed here).
     */
    private static OneDnnWeight pack(ByteBuffer plain, int out, int in, memory.data_type type, primitive_attr attr, float[] scales) {
        engine e = OneDnn.cpu();
        try (attr; matmul.primitive_desc pd = new matmul.primitive_desc(e, OneDnn.desc(1, in, memory.data_type.bf16, memory.format_tag.ab),
                OneDnn.desc(in, out, type, memory.format_tag.any), OneDnn.desc(1, out, memory.data_type.f32, memory.format_tag.ab),
                attr, false)) {
            memory.desc packedDesc = pd.weights_desc();
            memory packed = new memory(packedDesc, e);
            try (memory source = new memory(OneDnn.desc(in, out, type, memory.format_tag.ba), e, new BytePointer(plain));
                 reorder r = new reorder(source, packed)) {
                stream s = OneDnn.stream();
                r.execute(s, source, packed);
                s._wait();
            }
            return new OneDnnWeight(out, in, type, packedDesc, packed, scales);
        }
    }

    /** int8 weights: a scale per output (mask: the [in, out] matrix's axis 1), widened to bfloat16 to multiply. */
    private static primitive_attr int8Attr() {
        primitive_attr attr = new primitive_attr();
        attr.set_scales_mask(DNNL_ARG_WEIGHTS, 2);
        attr.set_fpmath_mode(dnnl.fpmath_mode.bf16, true);
        return attr;
    }

    /** Whether oneDNN multiplies int8 weights here with a JIT kernel (decided once, with a small weight). */
    static boolean int8Available() {
        return Int8Kernel.NAME != null && !Int8Kernel.NAME.startsWith("ref");
    }

    /** The kernel oneDNN picks for an int8 weight, or null where oneDNN is not available. */
    static String int8Kernel() {
        return Int8Kernel.NAME;
    }

    private static final class Int8Kernel {
        static final String NAME = probe();

        private static String probe() {
            if (!OneDnn.available()) {
                return null;
            }
            try (primitive_attr attr = int8Attr();
                 matmul.primitive_desc pd = new matmul.primitive_desc(OneDnn.cpu(), OneDnn.desc(1, 64, memory.data_type.bf16, memory.format_tag.ab),
                         OneDnn.desc(64, 64, memory.data_type.s8, memory.format_tag.any), OneDnn.desc(1, 64, memory.data_type.f32, memory.format_tag.ab),
                         attr, false)) {
                return pd.impl_info_str().getString();
            } catch (RuntimeException e) {
                return "ref (" + e.getMessage() + ")";
            }
        }
    }

    public int out() {
        return out;
    }

    public int in() {
        return in;
    }

    /** Whether the weight is int8 (with a scale per output); else bfloat16. */
    public boolean int8() {
        return type == memory.data_type.s8;
    }

    /** Whether one row is multiplied in Java from the packed bytes ({@link WeightStreaming#multiplyPackedInt8}). */
    public boolean streamsOneRow() {
        return rowView != null;
    }

    /** Bytes of the packed weight. */
    public long bytes() {
        return packedDesc.get_size();
    }

    /**
     * {@code y = x W^T}: x [rows, in] float32 and y [rows, out] float32, native-order direct buffers (or a CPU
     * tensor's memory) of at least those sizes; x is only read.
     */
    public void multiply(ByteBuffer x, int rows, ByteBuffer y) {
        multiply(x, rows, y, Epilogue.NONE);
    }

    /** {@code y = act(x W^T + bias) + residual} ({@link Epilogue}); buffers as in {@link #multiply(ByteBuffer, int, ByteBuffer)}. */
    public void multiply(ByteBuffer x, int rows, ByteBuffer y, Epilogue epilogue) {
        if (closed) {
            throw new IllegalStateException("the weight was closed with its model");
        }
        long yBytes = (long) rows * out * 4;
        if (rows <= 0 || x.capacity() < (long) rows * in * 4 || y.capacity() < yBytes || !x.isDirect() || !y.isDirect()
                || epilogue.bias() != null && (!epilogue.bias().isDirect() || epilogue.bias().capacity() < (long) out * 4)
                || epilogue.residual() != null && (!epilogue.residual().isDirect() || epilogue.residual().capacity() < yBytes)) {
            throw new IllegalArgumentException("oneDNN product: x of " + x.capacity() + " bytes and y of " + y.capacity()
                    + " for " + rows + " rows of [" + out + ", " + in + "], or a bias or residual of the wrong size");
        }
        if (rows == 1 && rowView != null && epilogue.activation() == Activation.NONE) { // a decode step's LM head, T5's steps
            float[] xs = new float[in];
            x.asFloatBuffer().get(xs);
            float[] ys = oneRow(xs);
            for (int o = 0; o < out; o++) { // the epilogue's order: (x W^T + b) + r
                if (epilogue.bias() != null) {
                    ys[o] += epilogue.bias().getFloat(4 * o);
                }
                if (epilogue.residual() != null) {
                    ys[o] += epilogue.residual().getFloat(4 * o);
                }
            }
            y.asFloatBuffer().put(ys);
            return;
        }
        Plan p = plans.get(new PlanKey(rows, epilogue.bias() != null, epilogue.activation(), epilogue.residual() != null), this::plan);
        engine e = OneDnn.cpu();
        stream s = OneDnn.stream();
        try (Pointer xp = new BytePointer(x); Pointer yp = new BytePointer(y);
             Pointer bp = epilogue.bias() == null ? null : new BytePointer(epilogue.bias());
             Pointer rp = epilogue.residual() == null ? null : new BytePointer(epilogue.residual());
             memory src = new memory(p.srcF32(), e, xp);
             memory srcBf16 = new memory(p.srcBf16(), e);
             memory dst = new memory(p.dst(), e, yp);
             memory bias = bp == null ? null : new memory(p.bias(), e, bp);
             memory residual = rp == null ? null : new memory(p.dst(), e, rp);
             Pointer sp = scaleBuffer == null ? null : new BytePointer(scaleBuffer);
             memory scales = sp == null ? null : new memory(p.scales(), e, sp);
             IntMemoryMap convert = new IntMemoryMap();
             IntMemoryMap product = new IntMemoryMap()) {
            convert.put(DNNL_ARG_FROM, src);
            convert.put(DNNL_ARG_TO, srcBf16);
            p.convert().execute(s, convert);
            product.put(DNNL_ARG_SRC, srcBf16);
            product.put(DNNL_ARG_WEIGHTS, packed);
            product.put(DNNL_ARG_DST, dst);
            if (scales != null) {
                product.put(DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, scales);
            }
            if (bias != null) {
                product.put(DNNL_ARG_BIAS, bias);
            }
            if (residual != null) { // the last post-op: after the activation's, if any
                int index = epilogue.activation() == Activation.NONE ? 0 : 1;
                product.put(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE * (index + 1) | DNNL_ARG_SRC_1, residual);
            }
            p.product().execute(s, product);
            s._wait();
        }
    }

    /**
     * {@link #multiply(float[], int)} with each row of the result its own array [out]: a batch of decode steps' logits
     * (8 x 50272 floats) is then never one array over the garbage collector's humongous size.
     */
    public float[][] multiplyRows(float[] x, int rows) {
        check(x, rows);
        float[][] y = new float[rows][];
        if (rows == 1 && rowView != null) {
            y[0] = oneRow(x);
            return y;
        }
        java.nio.FloatBuffer f = productInScratch(x, rows).asFloatBuffer();
        for (int r = 0; r < rows; r++) {
            y[r] = new float[out];
            f.get(r * out, y[r]);
        }
        return y;
    }

    /** {@link #multiply(ByteBuffer, int, ByteBuffer)} on Java arrays, through a per-thread buffer. */
    public float[] multiply(float[] x, int rows) {
        check(x, rows);
        if (rows == 1 && rowView != null) {
            return oneRow(x);
        }
        float[] y = new float[rows * out];
        productInScratch(x, rows).asFloatBuffer().get(y);
        return y;
    }

    private void check(float[] x, int rows) {
        if (rows <= 0 || x.length < (long) rows * in) {
            throw new IllegalArgumentException("oneDNN product: x of " + x.length + " values for " + rows + " rows of " + in);
        }
    }

    /** One row of int8 read in Java from the packed bytes ({@link #streamsOneRow}): x [in] to y [out]. */
    private float[] oneRow(float[] x) {
        if (closed) {
            throw new IllegalStateException("the weight was closed with its model");
        }
        float[] y = new float[out];
        WeightStreaming.get().multiplyPackedInt8(rowView, paddedIn, out, scaleValues, x, in, y);
        return y;
    }

    /** x [rows, in] through oneDNN via this thread's scratch buffers: the result [rows, out], valid until its next product. */
    private ByteBuffer productInScratch(float[] x, int rows) {
        ByteBuffer xb = OneDnn.scratch(OneDnn.Scratch.X, (long) rows * in * 4);
        ByteBuffer yb = OneDnn.scratch(OneDnn.Scratch.Y, (long) rows * out * 4);
        xb.asFloatBuffer().put(x, 0, rows * in);
        multiply(xb, rows, yb);
        return yb;
    }

    private Plan plan(PlanKey key) {
        engine e = OneDnn.cpu();
        int rows = key.rows();
        memory.desc srcF32 = OneDnn.desc(rows, in, memory.data_type.f32, memory.format_tag.ab);
        memory.desc srcBf16 = OneDnn.desc(rows, in, memory.data_type.bf16, memory.format_tag.ab);
        memory.desc dst = OneDnn.desc(rows, out, memory.data_type.f32, memory.format_tag.ab);
        memory.desc bias = key.bias() ? OneDnn.desc(1, out, memory.data_type.f32, memory.format_tag.ab) : null;
        primitive_attr attr = int8() ? int8Attr() : new primitive_attr();
        memory.desc scales = int8() ? new memory.desc(new long[] {out}, memory.data_type.f32, memory.format_tag.a) : null;
        post_ops ops = new post_ops();
        if (key.activation() != Activation.NONE) {
            ops.append_eltwise(key.activation().algorithm, 0f, 0f);
        }
        if (key.residual()) {
            ops.append_binary(dnnl.algorithm.binary_add, dst);
        }
        attr.set_post_ops(ops);
        // the weight's packed layout named outright: the kernel for any row count reads the one copy
        matmul.primitive_desc pd = bias == null ? new matmul.primitive_desc(e, srcBf16, packedDesc, dst, attr, false)
                : new matmul.primitive_desc(e, srcBf16, packedDesc, bias, dst, attr, false);
        reorder.primitive_desc rd = new reorder.primitive_desc(e, srcF32, e, srcBf16);
        return new Plan(srcF32, srcBf16, dst, bias, scales, new reorder(rd), new matmul(pd));
    }


    /** Frees the packed weight (with its model); products after this fail. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            packed.close();
        }
    }
}
