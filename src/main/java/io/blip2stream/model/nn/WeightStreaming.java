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

    /** Whether {@link #multiplyPackedInt8} runs a vector kernel here (512-bit vectors hold the layout's 16 ints). */
    public boolean readsPackedInt8() {
        return false;
    }

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
        run(work, chunks);
    }

    /**
     * One row through an int8 weight packed by oneDNN ({@link OneDnnWeight#streamable}: blocks of 32 inputs by 64
     * outputs, in each 16 pairs of inputs by 64 outputs, 2 bytes an output, so that the int at lane {@code i} of a
     * 64-byte vector holds outputs {@code 2i} and {@code 2i + 1} at inputs {@code k} and {@code k + 1}), read in
     * place: {@code y[o] = scales[o] * sum_k w[k, o] bf16(x[k])}. x is rounded to bfloat16 first, as oneDNN rounds it
     * for more rows, so that a row's result moves only by the sums' order with the batch it is in.
     *
     * @param w        the packed weight, [paddedIn / 32][out / 64 blocks] of 2048 bytes, 64 outputs' column of
     *                 blocks contiguous ({@code 64 paddedIn} bytes)
     * @param paddedIn in rounded up to a multiple of 32 (the weight is zero there)
     * @param out      outputs (the weight holds them rounded up to a multiple of 64)
     * @param x        [in]
     * @param y        [out], written
     */
    public final void multiplyPackedInt8(ByteBuffer w, int paddedIn, int out, float[] scales, float[] x, int in, float[] y) {
        int blocks = (out + 63) / 64;
        if (paddedIn % 32 != 0 || in > paddedIn || x.length < in || y.length < out || scales.length < out
                || w.capacity() < (long) blocks * 64 * paddedIn) {
            throw new IllegalArgumentException("packed int8 row: sizes do not match (out " + out + ", in " + in + ", padded "
                    + paddedIn + ", weight bytes " + w.capacity() + ")");
        }
        float[] xr = new float[paddedIn]; // bf16(x), zeros in the padding
        for (int k = 0; k < in; k++) {
            xr[k] = Float.intBitsToFloat(LowPrecisionWeight.toBfloat16(x[k]) << 16);
        }
        int chunk = Math.max(1, blocks / (THREADS * 8));
        int chunks = (blocks + chunk - 1) / chunk;
        AtomicInteger next = new AtomicInteger();
        Runnable work = () -> {
            float[] sums = new float[64];
            for (int c; (c = next.getAndIncrement()) < chunks; ) {
                for (int b = c * chunk; b < Math.min(blocks, (c + 1) * chunk); b++) {
                    packedInt8Block(w, paddedIn, xr, b, sums); // sums: even outputs of the first 32, odd, then the second 32's
                    int o0 = b * 64;
                    for (int half = 0; half < 2; half++) {
                        for (int i = 0; i < 16; i++) {
                            int even = o0 + 32 * half + 2 * i;
                            if (even < out) {
                                y[even] = sums[32 * half + i] * scales[even];
                            }
                            if (even + 1 < out) {
                                y[even + 1] = sums[32 * half + 16 + i] * scales[even + 1];
                            }
                        }
                    }
                }
            }
        };
        run(work, chunks);
    }

    /**
     * The unscaled sums of block {@code b}'s 64 outputs for one row xr [paddedIn] into sums: [0, 16) outputs 0, 2,
     * .., 30 of the block; [16, 32) outputs 1, 3, .., 31; [32, 48) and [48, 64) the same for outputs 32 to 63.
     */
    protected abstract void packedInt8Block(ByteBuffer w, int paddedIn, float[] xr, int b, float[] sums);

    private static void run(Runnable work, int chunks) {
        if (THREADS == 1 || chunks == 1) {
            work.run();
            return;
        }
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

    /**
     * One head's attention scores against its cached keys, read in place: {@code scores[p] = sum_k q[k] kT[k, p]} for
     * {@code p < c}, the keys transposed [H, C] at float index {@code base} of {@code keysT} (an engine array's memory).
     */
    public final void keyScores(ByteBuffer keysT, int base, int hd, int c, float[] q, float[] scores) {
        if (base < 0 || (long) 4 * (base + (long) hd * c) > keysT.capacity() || q.length < hd || scores.length < c) {
            throw new IllegalArgumentException("key scores: " + hd + " x " + c + " at " + base + " of " + keysT.capacity() + " bytes");
        }
        keyScores0(keysT, base, hd, c, q, scores);
    }

    /**
     * One head's context from its cached values, read in place: {@code ctx[co + h] += sum_p w[p] v[p, h]} for
     * {@code h < hd}, the values [C, H] at float index {@code base} of {@code values}.
     */
    public final void weightedValues(ByteBuffer values, int base, int c, int hd, float[] w, float[] ctx, int co) {
        if (base < 0 || (long) 4 * (base + (long) hd * c) > values.capacity() || w.length < c || co < 0 || ctx.length < co + hd) {
            throw new IllegalArgumentException("weighted values: " + c + " x " + hd + " at " + base + " of " + values.capacity() + " bytes");
        }
        weightedValues0(values, base, c, hd, w, ctx, co);
    }

    protected void keyScores0(ByteBuffer keysT, int base, int hd, int c, float[] q, float[] scores) {
        java.util.Arrays.fill(scores, 0, c, 0f);
        for (int k = 0; k < hd; k++) {
            float qk = q[k];
            int row = 4 * (base + k * c);
            for (int p = 0; p < c; p++) {
                scores[p] += qk * keysT.getFloat(row + 4 * p);
            }
        }
    }

    protected void weightedValues0(ByteBuffer values, int base, int c, int hd, float[] w, float[] ctx, int co) {
        for (int p = 0; p < c; p++) {
            float wp = w[p];
            int row = 4 * (base + p * hd);
            for (int h = 0; h < hd; h++) {
                ctx[co + h] += wp * values.getFloat(row + 4 * h);
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
        protected void packedInt8Block(ByteBuffer w, int paddedIn, float[] xr, int b, float[] sums) {
            long base = (long) b * 64 * paddedIn;
            for (int j = 0; j < 64; j++) { // output 32 * (j / 32) + 2 * (j % 16) + (j / 16) % 2 of the block
                int o = 32 * (j / 32) + 2 * (j % 16) + (j / 16) % 2;
                float acc = 0f;
                for (int k = 0; k < paddedIn; k++) {
                    acc += w.get((int) (base + (k / 2) * 128L + o * 2 + (k % 2))) * xr[k];
                }
                sums[j] = acc;
            }
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
