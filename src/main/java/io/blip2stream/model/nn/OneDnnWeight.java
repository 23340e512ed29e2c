package io.blip2stream.model.nn;

import org.bytedeco.dnnl.IntMemoryMap;
import org.bytedeco.dnnl.engine;
import org.bytedeco.dnnl.matmul;
import org.bytedeco.dnnl.memory;
import org.bytedeco.dnnl.primitive_attr;
import org.bytedeco.dnnl.reorder;
import org.bytedeco.dnnl.stream;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
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
 * step's one row, a prompt's tens and the vision encoder's 257 per image. A primitive per row count is kept (the
 * last {@value #PLANS} counts per weight); oneDNN caches the compiled kernels across weights of one shape.
 *
 * <p>{@link #available()} says whether oneDNN loads here and multiplies bfloat16 with a JIT kernel (not its
 * reference loops, which are hundreds of times slower); {@code BLIP2_ONEDNN=off} turns it off.
 */
public final class OneDnnWeight implements AutoCloseable {
    private static final int PLANS = 16;
    private static final String SETTING = "BLIP2_ONEDNN";
    private static final Runtime RUNTIME = Runtime.load();

    private final int out;
    private final int in;
    private final memory.desc packedDesc;
    private final memory packed;
    private final Map<Integer, Plan> plans = new LinkedHashMap<>(PLANS, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, Plan> eldest) {
            return size() > PLANS; // dropped, not closed: a thread may be running it; JavaCPP frees it when unreachable
        }
    };
    private volatile boolean closed;

    /** The primitives for one row count: x float32 to bfloat16, then the product. */
    private record Plan(memory.desc srcF32, memory.desc srcBf16, memory.desc dst, reorder convert, matmul product) {}

    /** oneDNN, once per process: the engine, a stream per thread, and why it is unavailable, if it is. */
    private record Runtime(engine cpu, ThreadLocal<stream> streams, String kernel, String unavailable) {
        static Runtime load() {
            String setting = System.getenv().getOrDefault(SETTING, System.getProperty("blip2.onednn", "auto")).strip();
            if (setting.equals("off")) {
                return new Runtime(null, null, null, SETTING + "=off");
            }
            if (!setting.equals("auto")) {
                return new Runtime(null, null, null, SETTING + " must be auto or off, not '" + setting + "' (taken as off)");
            }
            try {
                engine e = new engine(engine.kind.cpu, 0);
                ThreadLocal<stream> streams = ThreadLocal.withInitial(() -> new stream(e));
                // the kernel oneDNN picks for a bfloat16 product on this CPU: a reference one means no bfloat16 support
                try (matmul.primitive_desc pd = new matmul.primitive_desc(e, desc(1, 64, memory.data_type.bf16, memory.format_tag.ab),
                        desc(64, 64, memory.data_type.bf16, memory.format_tag.any), desc(1, 64, memory.data_type.f32, memory.format_tag.ab),
                        new primitive_attr(), false)) {
                    String kernel = pd.impl_info_str().getString();
                    if (kernel.startsWith("ref")) {
                        return new Runtime(null, null, kernel, "oneDNN has no bfloat16 kernel for this CPU (only " + kernel + ")");
                    }
                    return new Runtime(e, streams, kernel, null);
                }
            } catch (Throwable t) { // UnsatisfiedLinkError on a platform without the natives, or a oneDNN error
                return new Runtime(null, null, null, "oneDNN did not load: " + t);
            }
        }
    }

    private OneDnnWeight(int out, int in, memory.desc packedDesc, memory packed) {
        this.out = out;
        this.in = in;
        this.packedDesc = packedDesc;
        this.packed = packed;
    }

    /** Whether bfloat16 weights are packed for oneDNN here (the CPU has a bfloat16 kernel and the natives load). */
    public static boolean available() {
        return RUNTIME.unavailable() == null;
    }

    /** A line for logs: oneDNN's kernel, or why it is not used. */
    public static String describe() {
        return available() ? "oneDNN " + RUNTIME.kernel() : "no oneDNN (" + RUNTIME.unavailable() + ")";
    }

    /**
     * Packs a bfloat16 weight given as [out, in] row-major bits (little-endian, 2 bytes a value, as a checkpoint
     * stores a Linear weight); {@code plain} may be freed once this returns.
     */
    public static OneDnnWeight pack(ByteBuffer plain, int out, int in) {
        if (!available()) {
            throw new IllegalStateException(describe());
        }
        if (plain.capacity() < (long) out * in * 2) {
            throw new IllegalArgumentException("bfloat16 weight of " + plain.capacity() + " bytes for [" + out + ", " + in + "]");
        }
        engine e = RUNTIME.cpu();
        try (matmul.primitive_desc pd = new matmul.primitive_desc(e, desc(1, in, memory.data_type.bf16, memory.format_tag.ab),
                desc(in, out, memory.data_type.bf16, memory.format_tag.any), desc(1, out, memory.data_type.f32, memory.format_tag.ab),
                new primitive_attr(), false)) {
            memory.desc packedDesc = pd.weights_desc();
            memory packed = new memory(packedDesc, e);
            // W [out, in] row-major is the [in, out] matrix the product reads in format "ba" (out outermost)
            try (memory source = new memory(desc(in, out, memory.data_type.bf16, memory.format_tag.ba), e, new BytePointer(plain));
                 reorder r = new reorder(source, packed)) {
                stream s = RUNTIME.streams().get();
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
        if (closed) {
            throw new IllegalStateException("the weight was closed with its model");
        }
        if (rows <= 0 || x.capacity() < (long) rows * in * 4 || y.capacity() < (long) rows * out * 4 || !x.isDirect() || !y.isDirect()) {
            throw new IllegalArgumentException("oneDNN product: x of " + x.capacity() + " bytes and y of " + y.capacity()
                    + " for " + rows + " rows of [" + out + ", " + in + "]");
        }
        Plan p = plan(rows);
        engine e = RUNTIME.cpu();
        stream s = RUNTIME.streams().get();
        try (Pointer xp = new BytePointer(x); Pointer yp = new BytePointer(y);
             memory src = new memory(p.srcF32(), e, xp);
             memory srcBf16 = new memory(p.srcBf16(), e);
             memory dst = new memory(p.dst(), e, yp);
             IntMemoryMap convert = new IntMemoryMap();
             IntMemoryMap product = new IntMemoryMap()) {
            convert.put(DNNL_ARG_FROM, src);
            convert.put(DNNL_ARG_TO, srcBf16);
            p.convert().execute(s, convert);
            product.put(DNNL_ARG_SRC, srcBf16);
            product.put(DNNL_ARG_WEIGHTS, packed);
            product.put(DNNL_ARG_DST, dst);
            p.product().execute(s, product);
            s._wait();
        }
    }

    /** {@link #multiply(ByteBuffer, int, ByteBuffer)} on Java arrays, through a per-thread buffer. */
    public float[] multiply(float[] x, int rows) {
        if (rows <= 0 || x.length < (long) rows * in) {
            throw new IllegalArgumentException("oneDNN product: x of " + x.length + " values for " + rows + " rows of " + in);
        }
        Buffers b = BUFFERS.get().ensure((long) rows * in * 4, (long) rows * out * 4);
        b.x.clear();
        b.x.asFloatBuffer().put(x, 0, rows * in);
        multiply(b.x, rows, b.y);
        float[] y = new float[rows * out];
        b.y.clear();
        b.y.asFloatBuffer().get(y);
        return y;
    }

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    /** A thread's staging for products on Java arrays (a decode step's rows: kilobytes to a megabyte). */
    private static final class Buffers {
        ByteBuffer x = ByteBuffer.allocateDirect(0);
        ByteBuffer y = ByteBuffer.allocateDirect(0);

        Buffers ensure(long xBytes, long yBytes) {
            if (x.capacity() < xBytes) {
                x = ByteBuffer.allocateDirect(Math.toIntExact(xBytes)).order(ByteOrder.nativeOrder());
            }
            if (y.capacity() < yBytes) {
                y = ByteBuffer.allocateDirect(Math.toIntExact(yBytes)).order(ByteOrder.nativeOrder());
            }
            return this;
        }
    }

    private Plan plan(int rows) {
        synchronized (plans) {
            Plan p = plans.get(rows);
            if (p != null) {
                return p;
            }
        }
        engine e = RUNTIME.cpu();
        memory.desc srcF32 = desc(rows, in, memory.data_type.f32, memory.format_tag.ab);
        memory.desc srcBf16 = desc(rows, in, memory.data_type.bf16, memory.format_tag.ab);
        memory.desc dst = desc(rows, out, memory.data_type.f32, memory.format_tag.ab);
        // the weight's packed layout named outright: the kernel for any row count reads the one copy
        matmul.primitive_desc pd = new matmul.primitive_desc(e, srcBf16, packedDesc, dst, new primitive_attr(), false);
        reorder.primitive_desc rd = new reorder.primitive_desc(e, srcF32, e, srcBf16);
        Plan p = new Plan(srcF32, srcBf16, dst, new reorder(rd), new matmul(pd));
        synchronized (plans) {
            plans.put(rows, p);
        }
        return p;
    }

    private static memory.desc desc(long rows, long cols, memory.data_type type, memory.format_tag tag) {
        return new memory.desc(new long[] {rows, cols}, type, tag);
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
