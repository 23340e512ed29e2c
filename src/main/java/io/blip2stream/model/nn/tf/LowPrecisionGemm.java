package io.blip2stream.model.nn.tf;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.nn.tf.TfGraph.Out;
import io.blip2stream.model.weights.DirectBuffers;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The TensorFlow side of {@code LowPrecisionWeight}: functions registered once in TensorFlow's eager context: x [R, in] float32 and a weight to [R, out]
 * float32. A streamed weight first has x's columns gathered into its stored order (a zero column appended for the
 * padding), and int8 values are widened and scaled. The product itself is computed one of two ways
 * ({@code BLIP2_LOW_PRECISION_GEMM}): oneDNN's bfloat16 GEMM ({@code _MklMatMul}, x and the result rounded to
 * bfloat16; the default on a GPU), or the weight widened to float32 for the float32 GEMM, which rounds nothing
 * more (the default on a CPU: on this machine's AMD EPYC with AVX512_BF16, oneDNN 3.3's float32 GEMM does
 * 257 x 1408 x 6144 in 13 ms against 21 ms in bfloat16). {@code auto} times both once at first use and takes
 * the faster; on a shared machine that choice, and so the last bits of the results, can differ between starts.
 */
public final class LowPrecisionGemm {
    private static final int FLOAT = 1;
    private static final int INT32 = 3;
    private static final int INT8 = 6;
    private static final int INT64 = 9;
    private static final int BF16 = 14;
    private static LowPrecisionGemm instance;
    /** The registered functions' names: a bfloat16 weight [out, in], streamed bfloat16 and streamed int8 weights. */
    public final String bf16;
    public final String bf16Streamed;
    public final String int8Streamed;
    /** [[0, 0], [0, 1]]: one zero column after x's */
    public final NDArray padding;
    /** 1: gather columns */
    public final NDArray axis;

    private LowPrecisionGemm(String prefix, boolean bf16Gemm, NDManager m) {
        this.bf16 = prefix + "bf16";
        this.bf16Streamed = prefix + "bf16_streamed";
        this.int8Streamed = prefix + "int8_streamed";
        this.padding = m.create(new int[] {0, 0, 0, 1}, new Shape(2, 2));
        this.axis = m.create(1);
    }

    /** The functions, registered at the first call with the engine of {@code m}. */
    public static synchronized LowPrecisionGemm get(NDManager m) {
        if (instance == null) {
            // registered with a root manager of the engine's own: the constants outlive any one model
            NDManager root = m.getEngine().newBaseManager();
            boolean onednn = !"0".equals(System.getenv("TF_ENABLE_ONEDNN_OPTS"));
            LowPrecisionGemm wide = register(root, false, onednn);
            LowPrecisionGemm narrow = onednn ? register(root, true, true) : null;
            // deterministic by default: float32 on a CPU (exact, and faster here), bfloat16 on a GPU (tensor cores);
            // auto times both once, which on a noisy machine may choose differently from one start to the next
            String setting = System.getenv().getOrDefault("BLIP2_LOW_PRECISION_GEMM",
                    m.getDevice().isGpu() ? "bfloat16" : "float32").strip();
            instance = switch (setting) {
                case "float32" -> wide;
                case "bfloat16" -> narrow != null && narrow.works(root) ? narrow : wide;
                case "auto" -> narrow != null && narrow.works(root) && narrow.time(root) < wide.time(root) ? narrow : wide;
                default -> throw new IllegalArgumentException("BLIP2_LOW_PRECISION_GEMM must be bfloat16, float32 or auto, not '" + setting + "'");
            };
        }
        return instance;
    }

    private static LowPrecisionGemm register(NDManager m, boolean bf16Gemm, boolean onednn) {
        LowPrecisionGemm f = new LowPrecisionGemm("blip2_linear_" + (bf16Gemm ? "bf16gemm_" : "f32gemm_") + (onednn ? "onednn_" : "eigen_"), bf16Gemm, m);
        try (TfGraph g = new TfGraph()) {
            Out x = g.input(FLOAT);
            Out w = g.input(INT8);                                                   // (out, in, 2): bfloat16 bits
            Out wb = g.opWith("Bitcast", a -> a.type("type", BF16), w);   // (out, in)
            g.register(m, f.bf16, product(g, x, wb, bf16Gemm, onednn));
        }
        try (TfGraph g = new TfGraph()) {
            Out x = g.input(FLOAT);                                                  // (R, in)
            Out columns = g.input(INT32);                                            // (stride)
            Out w = g.input(INT8);                                                   // (out, stride, 2)
            Out padding = g.input(INT32);
            Out axis = g.input(INT32);
            Out wb = g.opWith("Bitcast", a -> a.type("type", BF16), w);   // (out, stride)
            g.register(m, f.bf16Streamed, product(g, gather(g, x, columns, padding, axis), wb, bf16Gemm, onednn));
        }
        try (TfGraph g = new TfGraph()) {
            Out x = g.input(FLOAT);                                                  // (R, in)
            Out columns = g.input(INT32);                                            // (stride)
            Out w = g.input(INT8);                                                   // (out, stride)
            Out scales = g.input(FLOAT);                                             // (out, groups, 1)
            Out padding = g.input(INT32);
            Out axis = g.input(INT32);
            Out grouped = g.input(INT64);                                            // [out, groups, group]
            Out shape = g.input(INT64);                                              // [out, stride]
            Out wf = g.op("Mul", g.op("Reshape", cast(g, w, FLOAT), grouped), scales); // (out, groups, group)
            g.register(m, f.int8Streamed, product(g, gather(g, x, columns, padding, axis), g.op("Reshape", wf, shape), bf16Gemm, onednn));
        }
        return f;
    }

    /** x [R, K] float32 times w [N, K] (bfloat16 or float32) transposed: [R, N] float32. */
    private static Out product(TfGraph g, Out x, Out w, boolean bf16Gemm, boolean onednn) {
        if (bf16Gemm) {
            return cast(g, matMul(g, cast(g, x, BF16), cast(g, w, BF16), onednn), FLOAT);
        }
        return matMul(g, x, cast(g, w, FLOAT), onednn);
    }

    /** The best of three runs of a 256 x 1024 x 1024 product through the bfloat16 weight function, in ns. */
    private long time(NDManager m) {
        try (NDManager scope = m.newSubManager()) {
            NDArray x = scope.randomNormal(new Shape(256, 1024));
            ByteBuffer w = ByteBuffer.allocateDirect(1024 * 1024 * 2).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < 1024 * 1024; i++) {
                w.putShort(2 * i, bfloat16((i % 7 - 3) * 0.01f));
            }
            NDArray wa = scope.create(w, new Shape(1024, 1024, 2), DataType.INT8);
            DirectBuffers.free(w);
            long best = Long.MAX_VALUE;
            for (int i = 0; i < 4; i++) {
                long t0 = System.nanoTime();
                TfEager.call(scope, bf16, new NDArray[] {x, wa}, 1)[0].toFloatArray();
                if (i > 0) {
                    best = Math.min(best, System.nanoTime() - t0);
                }
            }
            return best;
        }
    }

    /** x [R, in] with a zero column appended, its columns gathered into the stored order: [R, stride]. */
    private static Out gather(TfGraph g, Out x, Out columns, Out padding, Out axis) {
        Out padded = g.op("Pad", x, padding);                                        // (R, in + 1)
        return g.op("GatherV2", padded, columns, axis);
    }

    private static Out cast(TfGraph g, Out x, int type) {
        return g.opWith("Cast", a -> a.type("DstT", type), x);
    }

    private static Out matMul(TfGraph g, Out a, Out b, boolean onednn) {
        return g.opWith(onednn ? "_MklMatMul" : "MatMul", d -> {
            d.bool("transpose_b", true);
            if (onednn) {
                d.string("_kernel", "MklNameChangeOp");
            }
        }, a, b);
    }

    /** A 2 x 2 product through the bfloat16 function, checked (a TensorFlow without oneDNN fails it). */
    private boolean works(NDManager m) {
        try (NDManager scope = m.newSubManager()) {
            ByteBuffer w = ByteBuffer.allocateDirect(8).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : new float[] {1, 2, 3, 4}) {
                w.putShort(bfloat16(v));
            }
            w.flip();
            NDArray x = scope.create(new float[] {1, 1, 2, 0}, new Shape(2, 2));
            NDArray y = TfEager.call(scope, bf16, new NDArray[] {x, scope.create(w, new Shape(2, 2, 2), DataType.INT8)}, 1)[0];
            return java.util.Arrays.equals(y.toFloatArray(), new float[] {3, 7, 2, 6});
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** float32 to bfloat16 bits, truncated (the test values here are exact in bfloat16 or need not be). */
    private static short bfloat16(float v) {
        return (short) (Float.floatToIntBits(v) >>> 16);
    }
}
