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
import org.bytedeco.javacpp.Pointer;

import java.nio.ByteBuffer;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE;
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
 * <p>{@link #available()} says whether oneDNN loads here and multiplies bfloat16 with a JIT kernel (not its
 * reference loops, which are hundreds of times slower); {@code BLIP2_ONEDNN=off} turns it off.
 */
public final class OneDnnWeight implements AutoCloseable {

    private final int out;
    private final int in;
    private final memory.desc packedDesc;
    private final memory packed;
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
    private record Plan(memory.desc srcF32, memory.desc srcBf16, memory.desc dst, memory.desc bias, reorder convert, matmul product) {}

    private OneDnnWeight(int out, int in, memory.desc packedDesc, memory packed) {
        this.out = out;
        this.in = in;
        this.packedDesc = packedDesc;
        this.packed = packed;
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
        engine e = OneDnn.cpu();
        try (matmul.primitive_desc pd = new matmul.primitive_desc(e, OneDnn.desc(1, in, memory.data_type.bf16, memory.format_tag.ab),
                OneDnn.desc(in, out, memory.data_type.bf16, memory.format_tag.any), OneDnn.desc(1, out, memory.data_type.f32, memory.format_tag.ab),
                new primitive_attr(), false)) {
            memory.desc packedDesc = pd.weights_desc();
            memory packed = new memory(packedDesc, e);
            // W [out, in] row-major is the [in, out] matrix the product reads in format "ba" (out outermost)
            try (memory source = new memory(OneDnn.desc(in, out, memory.data_type.bf16, memory.format_tag.ba), e, new BytePointer(plain));
                 reorder r = new reorder(source, packed)) {
                stream s = OneDnn.stream();
                r.execute(s, source, packed);
                s._wait();
            }
            return new OneDnnWeight(out, in, packedDesc, packed);
        }
    }

    public int out() {
        return out;
    }

    public int in() {
        return in;
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
             IntMemoryMap convert = new IntMemoryMap();
             IntMemoryMap product = new IntMemoryMap()) {
            convert.put(DNNL_ARG_FROM, src);
            convert.put(DNNL_ARG_TO, srcBf16);
            p.convert().execute(s, convert);
            product.put(DNNL_ARG_SRC, srcBf16);
            product.put(DNNL_ARG_WEIGHTS, packed);
            product.put(DNNL_ARG_DST, dst);
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

    /** {@link #multiply(ByteBuffer, int, ByteBuffer)} on Java arrays, through a per-thread buffer. */
    public float[] multiply(float[] x, int rows) {
        if (rows <= 0 || x.length < (long) rows * in) {
            throw new IllegalArgumentException("oneDNN product: x of " + x.length + " values for " + rows + " rows of " + in);
        }
        ByteBuffer xb = OneDnn.scratch(OneDnn.Scratch.X, (long) rows * in * 4);
        ByteBuffer yb = OneDnn.scratch(OneDnn.Scratch.Y, (long) rows * out * 4);
        xb.asFloatBuffer().put(x, 0, rows * in);
        multiply(xb, rows, yb);
        float[] y = new float[rows * out];
        yb.asFloatBuffer().get(y);
        return y;
    }

    private Plan plan(PlanKey key) {
        engine e = OneDnn.cpu();
        int rows = key.rows();
        memory.desc srcF32 = OneDnn.desc(rows, in, memory.data_type.f32, memory.format_tag.ab);
        memory.desc srcBf16 = OneDnn.desc(rows, in, memory.data_type.bf16, memory.format_tag.ab);
        memory.desc dst = OneDnn.desc(rows, out, memory.data_type.f32, memory.format_tag.ab);
        memory.desc bias = key.bias() ? OneDnn.desc(1, out, memory.data_type.f32, memory.format_tag.ab) : null;
        primitive_attr attr = new primitive_attr();
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
        return new Plan(srcF32, srcBf16, dst, bias, new reorder(rd), new matmul(pd));
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
