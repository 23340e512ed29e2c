package io.blip2stream.model.nn;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** oneDNN's bfloat16 products on a packed weight against exact sums, at a decode step's rows and an image's. */
class OneDnnWeightTest {
    static final int OUT = 200; // not a multiple of oneDNN's 64-output blocks
    static final int IN = 136;  // not a multiple of its 32-value pairs

    /** A CPU that lists avx512_bf16 has oneDNN's bfloat16 kernel: there, not having it is a failure, not a skip. */
    @Test
    void loadsWhereTheCpuHasBfloat16() throws Exception {
        Path cpuinfo = Path.of("/proc/cpuinfo");
        boolean bf16 = Files.exists(cpuinfo) && Files.readString(cpuinfo).contains(" avx512_bf16");
        boolean x86 = System.getProperty("os.arch").equals("amd64");
        if (bf16 && x86) {
            assertTrue(OneDnnWeight.available(), OneDnnWeight.describe());
            // a JIT kernel that multiplies bfloat16: AVX512_BF16's, or AMX's on CPUs that have it (avx10_1_512_amx)
            assertTrue(bfloat16Kernel(), OneDnnWeight.describe());
        }
    }

    /** oneDNN's bfloat16 kernel here is a JIT one: AVX512_BF16's ({@code avx512_core_bf16}) or AMX's ({@code ..._amx}). */
    static boolean bfloat16Kernel() {
        String k = OneDnnWeight.describe();
        return k.contains("bf16") || k.contains("amx");
    }

    static ByteBuffer direct(float[] v) {
        ByteBuffer b = ByteBuffer.allocateDirect(v.length * 4).order(ByteOrder.nativeOrder());
        b.asFloatBuffer().put(v);
        return b;
    }

    /** erf to 1.5e-7 (Abramowitz and Stegun 7.1.26). */
    static double erf(double z) {
        double t = 1 / (1 + 0.3275911 * Math.abs(z));
        double y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
        return Math.signum(z) * y;
    }

    @Test
    void productsMatchExactSumsWithinBfloat16RoundingAndDoNotDependOnTheRowCount() {
        if (!OneDnnWeight.available()) {
            assertThrows(IllegalStateException.class, () -> OneDnnWeight.pack(ByteBuffer.allocateDirect(8), 2, 2));
            return;
        }
        Random r = new Random(3);
        float[] w = new float[OUT * IN];
        ByteBuffer plain = ByteBuffer.allocateDirect(OUT * IN * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < w.length; i++) {
            short bits = LowPrecisionWeight.toBfloat16((float) r.nextGaussian() * 0.05f);
            plain.putShort(2 * i, bits);
            w[i] = Float.intBitsToFloat((bits & 0xffff) << 16); // the weight as stored: the product's error is x's rounding
        }
        try (OneDnnWeight packed = OneDnnWeight.pack(plain, OUT, IN)) {
            assertEquals(OUT, packed.out());
            assertTrue(packed.bytes() >= (long) OUT * IN * 2, "packed " + packed.bytes());
            float[] x = new float[257 * IN];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            float[] all = packed.multiply(x, 257);
            for (int rows : new int[] {1, 3, 8, 64, 257}) {
                float[] y = packed.multiply(java.util.Arrays.copyOf(x, rows * IN), rows);
                // a row's result is the same whichever rows it is multiplied with (batching changes no token)
                assertArrayEquals(java.util.Arrays.copyOf(all, rows * OUT), y, "rows " + rows);
            }
            for (int row = 0; row < 257; row++) {
                for (int o = 0; o < OUT; o++) {
                    double[] sum = WeightStreamingTest.exactDot(w, x, row, o, IN);
                    double exact = sum[0];
                    double magnitude = sum[1];
                    double err = Math.abs(all[row * OUT + o] - exact);
                    assertTrue(err <= 2.0 / 256 * magnitude + 1e-5, "row " + row + " out " + o + ": " + all[row * OUT + o] + " vs " + exact);
                }
            }
            // the epilogue: act(x W^T + b) + r in one pass equals the product followed by the same ops in Java
            int rows = 5;
            ByteBuffer xb = direct(java.util.Arrays.copyOf(x, rows * IN));
            float[] bias = new float[OUT];
            float[] res = new float[rows * OUT];
            for (int o = 0; o < OUT; o++) {
                bias[o] = (float) r.nextGaussian();
            }
            for (int i = 0; i < res.length; i++) {
                res[i] = (float) r.nextGaussian();
            }
            float[] plainY = java.util.Arrays.copyOf(all, rows * OUT);
            for (OneDnnWeight.Activation act : OneDnnWeight.Activation.values()) {
                for (boolean withResidual : new boolean[] {false, true}) {
                    ByteBuffer yb = ByteBuffer.allocateDirect(rows * OUT * 4).order(ByteOrder.nativeOrder());
                    packed.multiply(xb, rows, yb, new OneDnnWeight.Epilogue(direct(bias), act, withResidual ? direct(res) : null));
                    for (int i = 0; i < rows * OUT; i++) {
                        double v = plainY[i] + bias[i % OUT];
                        v = switch (act) {
                            case NONE -> v;
                            case RELU -> Math.max(v, 0);
                            case GELU_ERF -> 0.5 * v * (1 + erf(v / Math.sqrt(2)));
                            case GELU_TANH -> 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                        };
                        v += withResidual ? res[i] : 0;
                        float got = yb.getFloat(4 * i);
                        assertEquals(v, got, 1e-4 * (1 + Math.abs(v)), act + " residual " + withResidual + " at " + i);
                    }
                }
            }
            assertEquals(OneDnnWeight.Activation.GELU_ERF, OneDnnWeight.Activation.of("gelu"));
            assertEquals(null, OneDnnWeight.Activation.of("quick_gelu")); // not fused: applied by the engine after
            ByteBuffer small = ByteBuffer.allocateDirect(4).order(ByteOrder.nativeOrder());
            assertThrows(IllegalArgumentException.class, () -> packed.multiply(xb, rows, ByteBuffer.allocateDirect(rows * OUT * 4),
                    new OneDnnWeight.Epilogue(small, OneDnnWeight.Activation.NONE, null))); // a bias too short
            assertThrows(IllegalArgumentException.class, () -> packed.multiply(new float[IN], 2)); // x too short
            packed.close();
            assertThrows(IllegalStateException.class, () -> packed.multiply(new float[IN], 1));
        }
    }

    /**
     * int8 with a scale per output: oneDNN's products (2 or more rows, x rounded to bfloat16) and the one-row product
     * read in Java from the same packed bytes both equal the exact sums of the int8 values times bf16(x), within
     * float32's rounding; the one-row and the many-row results agree to that rounding too.
     */
    @Test
    void int8ProductsMatchExactSumsInOneRowAndMany() {
        if (!OneDnnWeight.available()) {
            assertThrows(IllegalStateException.class, () -> OneDnnWeight.packInt8(ByteBuffer.allocateDirect(4), new float[2], 2, 2));
            return;
        }
        // where oneDNN multiplies bfloat16 with its JIT kernel, it widens int8 with one too
        assertTrue(OneDnnWeight.int8Available(), OneDnnWeight.int8Kernel());
        Random r = new Random(5);
        for (int[] shape : new int[][] {{OUT, IN}, {64, 32}, {130, 2560}}) {
            int out = shape[0];
            int in = shape[1];
            byte[] q = new byte[out * in];
            ByteBuffer plain = ByteBuffer.allocateDirect(out * in);
            for (int i = 0; i < q.length; i++) {
                q[i] = (byte) (r.nextInt(255) - 127);
                plain.put(i, q[i]);
            }
            float[] scales = new float[out];
            for (int o = 0; o < out; o++) {
                scales[o] = 0.001f + r.nextFloat() * 0.01f;
            }
            try (OneDnnWeight packed = OneDnnWeight.packInt8(plain, scales, out, in)) {
                assertTrue(packed.int8());
                // the layout oneDNN 3.8 packs int8 into for its AVX512_BF16 and AMX kernels is the one the Java kernel
                // reads (the exact sums below check that it reads it right)
                assertEquals(WeightStreaming.get().readsPackedInt8() && bfloat16Kernel(), packed.streamsOneRow(),
                        OneDnnWeight.int8Kernel());
                int rows = 5;
                float[] x = new float[rows * in];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) r.nextGaussian();
                }
                float[] many = packed.multiply(x, rows);
                float[][] split = packed.multiplyRows(x, rows); // the same values, a row to an array
                for (int row = 0; row < rows; row++) {
                    assertArrayEquals(java.util.Arrays.copyOfRange(many, row * out, (row + 1) * out), split[row], "row " + row);
                }
                for (int row = 0; row < rows; row++) {
                    float[] one = packed.multiply(java.util.Arrays.copyOfRange(x, row * in, (row + 1) * in), 1);
                    for (int o = 0; o < out; o++) {
                        double exact = 0;
                        double magnitude = 0;
                        for (int k = 0; k < in; k++) {
                            float xr = Float.intBitsToFloat(LowPrecisionWeight.toBfloat16(x[row * in + k]) << 16);
                            exact += (double) q[o * in + k] * xr;
                            magnitude += Math.abs((double) q[o * in + k] * xr);
                        }
                        exact *= scales[o];
                        magnitude *= scales[o];
                        double tol = 1e-5 * magnitude + 1e-6;
                        assertEquals(exact, one[o], tol, out + "x" + in + " one row " + row + " out " + o);
                        assertEquals(exact, many[row * out + o], tol, out + "x" + in + " row " + row + " of " + rows + " out " + o);
                    }
                }
                // one row from engine memory (an LM head's step) with a bias and a residual: the same row plus both
                float[] bias = new float[out];
                float[] res = new float[out];
                for (int o = 0; o < out; o++) {
                    bias[o] = (float) r.nextGaussian();
                    res[o] = (float) r.nextGaussian();
                }
                float[] one = packed.multiply(java.util.Arrays.copyOf(x, in), 1);
                ByteBuffer yb = ByteBuffer.allocateDirect(out * 4).order(ByteOrder.nativeOrder());
                packed.multiply(direct(java.util.Arrays.copyOf(x, in)), 1, yb,
                        new OneDnnWeight.Epilogue(direct(bias), OneDnnWeight.Activation.NONE, direct(res)));
                for (int o = 0; o < out; o++) {
                    assertEquals(one[o] + bias[o] + res[o], yb.getFloat(4 * o), 1e-5 * (1 + Math.abs(one[o])), "epilogue at " + o);
                }
                assertThrows(IllegalArgumentException.class, () -> OneDnnWeight.packInt8(plain, new float[out - 1], out, in));
                // no rows, negative rows, x too short: refused by name, whichever entry point
                for (int bad : new int[] {0, -1}) {
                    assertThrows(IllegalArgumentException.class, () -> packed.multiplyRows(x, bad));
                    assertThrows(IllegalArgumentException.class, () -> packed.multiply(x, bad));
                }
                assertThrows(IllegalArgumentException.class, () -> packed.multiplyRows(new float[in - 1], 1));
                assertThrows(IllegalArgumentException.class, () -> packed.multiply(new float[in - 1], 1));
            }
        }
    }
}
