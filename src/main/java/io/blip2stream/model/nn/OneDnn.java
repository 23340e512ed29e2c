package io.blip2stream.model.nn;

import org.bytedeco.dnnl.engine;
import org.bytedeco.dnnl.matmul;
import org.bytedeco.dnnl.memory;
import org.bytedeco.dnnl.primitive_attr;
import org.bytedeco.dnnl.stream;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * oneDNN 3.8, called directly through JavaCPP's presets ({@code org.bytedeco:dnnl}), once per process: its CPU
 * engine, a stream per thread, and whether it is used here. It is used where it loads and multiplies bfloat16 with
 * a JIT kernel (AVX512_BF16 or AMX; a reference kernel would be hundreds of times slower), unless
 * {@code BLIP2_ONEDNN=off}. {@link OneDnnWeight} and {@link OneDnnLayerNorm} run on it.
 */
final class OneDnn {
    private static final String SETTING = "BLIP2_ONEDNN";
    private static final OneDnn INSTANCE = load();

    private final engine cpu;
    private final ThreadLocal<stream> streams;
    private final String kernel;
    private final String unavailable;

    private OneDnn(engine cpu, String kernel, String unavailable) {
        this.cpu = cpu;
        this.streams = cpu == null ? null : ThreadLocal.withInitial(() -> new stream(cpu));
        this.kernel = kernel;
        this.unavailable = unavailable;
    }

    private static OneDnn load() {
        String setting = System.getenv().getOrDefault(SETTING, System.getProperty("blip2.onednn", "auto")).strip();
        if (setting.equals("off")) {
            return new OneDnn(null, null, SETTING + "=off");
        }
        if (!setting.equals("auto")) {
            return new OneDnn(null, null, SETTING + " must be auto or off, not '" + setting + "' (taken as off)");
        }
        try {
            engine e = new engine(engine.kind.cpu, 0);
            // the kernel oneDNN picks for a bfloat16 product on this CPU: a reference one means no bfloat16 support
            try (matmul.primitive_desc pd = new matmul.primitive_desc(e, desc(1, 64, memory.data_type.bf16, memory.format_tag.ab),
                    desc(64, 64, memory.data_type.bf16, memory.format_tag.any), desc(1, 64, memory.data_type.f32, memory.format_tag.ab),
                    new primitive_attr(), false)) {
                String kernel = pd.impl_info_str().getString();
                if (kernel.startsWith("ref")) {
                    return new OneDnn(null, kernel, "oneDNN has no bfloat16 kernel for this CPU (only " + kernel + ")");
                }
                return new OneDnn(e, kernel, null);
            }
        } catch (Throwable t) { // UnsatisfiedLinkError on a platform without the natives, or a oneDNN error
            return new OneDnn(null, null, "oneDNN did not load: " + t);
        }
    }

    static boolean available() {
        return INSTANCE.unavailable == null;
    }

    /**
     * Whether oneDNN runs a model's layers loaded in {@code p} into {@code m}: a low precision, on TensorFlow (whose
     * CPU arrays it reads and writes in place), on the CPU, where oneDNN is available. The one place that decides;
     * which layers then use it: {@link LowPrecisionWeight#load} (bfloat16 weights), {@link LayerNorm#load},
     * {@link OneDnnAttention#serves}.
     */
    static boolean serves(io.blip2stream.model.weights.Precision p, ai.djl.ndarray.NDManager m) {
        return p != io.blip2stream.model.weights.Precision.FLOAT32 && !m.getDevice().isGpu()
                && "TensorFlow".equals(m.getEngine().getEngineName()) && available();
    }

    /** A line for logs: oneDNN's bfloat16 kernel, or why oneDNN is not used. */
    static String describe() {
        return available() ? "oneDNN " + INSTANCE.kernel : "no oneDNN (" + INSTANCE.unavailable + ")";
    }

    static engine cpu() {
        if (!available()) {
            throw new IllegalStateException(describe());
        }
        return INSTANCE.cpu;
    }

    /** This thread's stream (a oneDNN stream is not to be shared between threads). */
    static stream stream() {
        cpu();
        return INSTANCE.streams.get();
    }

    /**
     * Primitives made for a shape (a row count, an epilogue), the last {@value Plans#SIZE} used: making one costs a
     * primitive descriptor (and the first time per shape a JIT compile), so a decode step's hundred products must
     * not make theirs again. One dropped from the cache is not closed (a thread may be running it); JavaCPP frees it
     * once unreachable.
     */
    static final class Plans<K, V> {
        static final int SIZE = 16;
        private final Map<K, V> cache = new LinkedHashMap<>(SIZE, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<K, V> eldest) {
                return size() > SIZE;
            }
        };

        /** The plan for {@code key}, made by {@code make} outside the lock if there is none. */
        V get(K key, Function<K, V> make) {
            synchronized (cache) {
                V v = cache.get(key);
                if (v != null) {
                    return v;
                }
            }
            V v = make.apply(key);
            synchronized (cache) {
                cache.put(key, v);
            }
            return v;
        }
    }

    /** Per-thread scratch buffers, one per use: x and y of a product on Java arrays, attention scores. */
    enum Scratch { X, Y, SCORES }

    private static final ThreadLocal<ByteBuffer[]> SCRATCH = ThreadLocal.withInitial(() -> new ByteBuffer[Scratch.values().length]);

    /**
     * This thread's buffer for {@code use}, native order, at least {@code bytes} long: grown as needed and kept (a
     * decode step's rows take kilobytes; 8 images' attention scores 33 MB), so products do not allocate.
     */
    static ByteBuffer scratch(Scratch use, long bytes) {
        ByteBuffer[] held = SCRATCH.get();
        ByteBuffer b = held[use.ordinal()];
        if (b == null || b.capacity() < bytes) {
            b = ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.nativeOrder());
            held[use.ordinal()] = b;
        }
        b.clear();
        return b;
    }

    /** {@code v} in a new native-order direct buffer (a bias, a norm's scale), for oneDNN to read. */
    static ByteBuffer floats(float[] v) {
        ByteBuffer b = ByteBuffer.allocateDirect(v.length * 4).order(ByteOrder.nativeOrder());
        b.asFloatBuffer().put(v);
        return b;
    }

    static memory.desc desc(long rows, long cols, memory.data_type type, memory.format_tag tag) {
        return new memory.desc(new long[] {rows, cols}, type, tag);
    }
}
