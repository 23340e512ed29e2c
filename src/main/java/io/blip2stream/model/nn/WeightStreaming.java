package io.blip2stream.model.nn;

import io.blip2stream.model.weights.Precision;

import java.nio.ByteBuffer;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Products {@code y = x W^T} with bfloat16 or int8 weights [out, in] read in Java at the rate memory delivers them.
 * At the few rows of a decode step every weight is read once for almost no arithmetic, so the step takes the
 * weights' bytes over the memory bandwidth; TensorFlow's GEMM repacks or converts the weights on every call and
 * reads them at half that rate or less (24 GB/s for bfloat16, 4 GB/s for int8 through a cast, against 33-45 GB/s
 * here on 2 cores; see models/README.md). Output rows are split across a pool of one thread per core; rows of x
 * go four at a time, sharing each widened weight vector.
 *
 * <p>The weights are stored in blocks of 16 lanes so that a vector of 16 ints holds a block whole and every value
 * is widened by shifts within its own lane (a byte-to-float conversion across lanes runs at half the rate):
 * <ul>
 *   <li>int8, blocks of 64 values: byte {@code 4 i + j} of a block holds value {@code 16 j + i}.</li>
 *   <li>bfloat16, blocks of 32 values: the int at lane {@code i} holds value {@code i} in its low half and
 *       {@code 16 + i} in its high half (a bfloat16 is the high half of a float32).</li>
 * </ul>
 * Each row of W is padded with zeros to a multiple of 64 values ({@link #paddedIn}); x must be padded likewise.
 *
 * <p>Two implementations: {@code VectorWeightStreaming}, on the JDK's Vector API (module jdk.incubator.vector,
 * loaded only when the JVM starts with {@code --add-modules jdk.incubator.vector}), and {@link Scalar}, which
 * computes the same sums in plain Java, several times slower, where the module is absent.
 */
public abstract class WeightStreaming {
    private static final String VECTOR_MODULE = "jdk.incubator.vector";
    private static final WeightStreaming INSTANCE = create();
    private static final int THREADS = Runtime.getRuntime().availableProcessors();
    private static final ExecutorService POOL = Executors.newFixedThreadPool(Math.max(1, THREADS - 1), r -> {
        Thread t = new Thread(r, "blip2-weight-streaming");
        t.setDaemon(true);
        return t;
    });

    /** The implementation this process runs. */
    public static WeightStreaming get() {
        return INSTANCE;
    }

    /** Whether the vector kernels run (the JVM was started with {@code --add-modules jdk.incubator.vector}). */
    public static boolean vectorized() {
        return !(INSTANCE instanceof Scalar);
    }

    /** A line for logs: which kernels run, and how to get the fast ones when they don't. */
    public static String describe() {
        return vectorized() ? INSTANCE.name()
                : "scalar (start java with --add-modules jdk.incubator.vector for the vector kernels, several times faster)";
    }

    private static WeightStreaming create() {
        if (ModuleLayer.boot().findModule(VECTOR_MODULE).isPresent()) {
            try {
                return (WeightStreaming) Class.forName("io.blip2stream.model.nn.VectorWeightStreaming")
                        .getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException | LinkageError e) {
                return new Scalar();
            }
        }
        return new Scalar();
    }

    /** Values per block: 64 int8 or 32 bfloat16 (64 bytes either way). */
    public static int block(Precision p) {
        return p == Precision.INT8 ? 64 : 32;
    }

    /** {@code in} rounded up to a multiple of 64 (whole blocks, two of bfloat16): the row stride of the stored weight and of x. */
    public static int paddedIn(int in) {
        return (in + 63) / 64 * 64;
    }

    /** Where value {@code k} of a row sits in the stored row: a byte index (int8) or a 2-byte index (bfloat16). */
    public static int position(Precision p, int k) {
        if (p == Precision.INT8) {
            int base = k & ~63;
            int j = (k & 63) >> 4;
            int i = k & 15;
            return base + 4 * i + j;
        }
        int base = k & ~31;
        int half = (k & 31) >> 4;
        int i = k & 15;
        return base + 2 * i + half;
    }

    /** Name for logs. */
    public abstract String name();

    /**
     * {@code y[r, o] = sum_g scale[o, g] * sum_(k in group g) w[o, k] x[r, k]} for {@code r < rows}, {@code o < out}.
     *
     * @param precision BFLOAT16 or INT8
     * @param w         [out, in] in the blocked layout above, little-endian
     * @param scales    INT8: [out, in / group], one per group of {@code group} values of a row; else null
     * @param group     INT8: values per scale, a multiple of 64 that divides {@code in}; else ignored
     * @param in        the padded row length ({@link #paddedIn})
     * @param x         [rows, in], zero where padded
     * @param y         [rows, out], written
     */
    public final void multiply(Precision precision, ByteBuffer w, float[] scales, int group, int out, int in, float[] x, int rows,
                               float[] y) {
        if (precision == Precision.FLOAT32) {
            throw new IllegalArgumentException("float32 weights are multiplied by the engine");
        }
        boolean int8 = precision == Precision.INT8;
        if (out < 0 || in < 0 || rows < 0 || in % 64 != 0
                || w.capacity() < (long) out * in * precision.bytes()
                || x.length < (long) rows * in || y.length < (long) rows * out
                || (int8 && (group <= 0 || group % 64 != 0 || in % group != 0 || scales == null
                        || scales.length < (long) out * (in / group)))) {
            throw new IllegalArgumentException("weight streaming: sizes do not match (out " + out + ", in " + in + ", rows "
                    + rows + ", weight bytes " + w.capacity() + ", x " + x.length + ", y " + y.length + ")");
        }
        // chunks of output rows small enough to balance a few threads, large enough to amortize a hand-off
        int chunk = Math.max(16, out / (THREADS * 8));
        int chunks = (out + chunk - 1) / chunk;
        if (THREADS == 1 || chunks == 1) {
            rows(precision, w, scales, group, in, x, rows, y, out, 0, out);
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Runnable work = () -> {
            for (int c; (c = next.getAndIncrement()) < chunks; ) {
                int o0 = c * chunk;
                rows(precision, w, scales, group, in, x, rows, y, out, o0, Math.min(out, o0 + chunk));
            }
        };
        int helpers = Math.min(THREADS - 1, chunks - 1);
        Future<?>[] futures = new Future<?>[helpers];
        for (int i = 0; i < helpers; i++) {
            futures[i] = POOL.submit(work);
        }
        work.run();
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted during a weight-streaming product", e);
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException("weight streaming failed", e.getCause());
            }
        }
    }

    /** Output rows {@code o0 <= o < o1} of {@link #multiply}; every index already checked. */
    protected abstract void rows(Precision precision, ByteBuffer w, float[] scales, int group, int in, float[] x, int rows,
                                 float[] y, int out, int o0, int o1);

    /** The same sums in plain Java: correct everywhere, several times slower than the vector kernels. */
    static final class Scalar extends WeightStreaming {
        @Override
        public String name() {
            return "scalar";
        }

        @Override
        protected void rows(Precision precision, ByteBuffer w, float[] scales, int group, int in, float[] x, int rows, float[] y,
                            int out, int o0, int o1) {
            boolean int8 = precision == Precision.INT8;
            int size = int8 ? group : in;
            for (int o = o0; o < o1; o++) {
                int base = o * in;
                for (int r = 0; r < rows; r++) {
                    int xo = r * in;
                    float total = 0f;
                    for (int g = 0; g < in; g += size) {
                        float acc = 0f;
                        for (int k = g; k < g + size; k++) {
                            int at = base + position(precision, k);
                            float wv = int8 ? w.get(at) : Float.intBitsToFloat((w.getShort(2 * at) & 0xffff) << 16);
                            acc += wv * x[xo + k];
                        }
                        total += int8 ? acc * scales[o * (in / group) + g / group] : acc;
                    }
                    y[r * out + o] = total;
                }
            }
        }
    }
}
