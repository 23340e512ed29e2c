package io.blip2stream.model.nn;

import io.blip2stream.model.weights.Precision;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The weight-streaming kernels against a double-precision product over the same weights, in every shape the blocked
 * layout has to handle: rows of x from 1 to 9 (the 4-row groups and the single rows after them), output counts that
 * do not divide into the threads' chunks, rows of several blocks; the vector kernels (the tests run with the vector
 * module) and the scalar ones.
 */
class WeightStreamingTest {

    /** Values and weights of one random case, with the layout written through {@link WeightStreaming#position}. */
    record Case(Precision p, int out, int in, int group, float[] w, float[] scales, ByteBuffer stored) {
        static Case random(Precision p, int out, int in, int group, long seed) {
            Random r = new Random(seed);
            float[] w = new float[out * in];
            int groups = in / group;
            float[] scales = p == Precision.INT8 ? new float[out * groups] : null;
            ByteBuffer stored = ByteBuffer.allocateDirect(out * in * p.bytes()).order(ByteOrder.LITTLE_ENDIAN);
            for (int o = 0; o < out; o++) {
                for (int g = 0; scales != null && g < groups; g++) {
                    scales[o * groups + g] = 0.001f + r.nextFloat() * 0.01f;
                }
                for (int k = 0; k < in; k++) {
                    int at = o * in + WeightStreaming.position(p, k);
                    if (p == Precision.INT8) {
                        byte q = (byte) (r.nextInt(255) - 127);
                        stored.put(at, q);
                        w[o * in + k] = q * scales[o * groups + k / group];
                    } else {
                        short bits = LowPrecisionWeight.toBfloat16((float) r.nextGaussian());
                        stored.putShort(2 * at, bits);
                        w[o * in + k] = Float.intBitsToFloat((bits & 0xffff) << 16);
                    }
                }
            }
            return new Case(p, out, in, group, w, scales, stored);
        }

        void check(WeightStreaming kernel, int rows, long seed) {
            Random r = new Random(seed);
            float[] x = new float[rows * in];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            float[] y = new float[rows * out];
            kernel.multiply(p, stored, scales, group, out, in, x, rows, y);
            for (int row = 0; row < rows; row++) {
                for (int o = 0; o < out; o++) {
                    double[] sum = exactDot(w, x, row, o, in);
                    double exact = sum[0];
                    double magnitude = sum[1];
                    double err = Math.abs(y[row * out + o] - exact);
                    // float32 sums in a different order: a few ulps of the sum of magnitudes
                    assertTrue(err <= 1e-5 * magnitude + 1e-6, kernel.name() + " " + p + " out " + out + " in " + in + " group " + group + " rows " + rows
                            + ": y[" + row + "," + o + "] = " + y[row * out + o] + ", exact " + exact);
                }
            }
        }
    }

    static List<WeightStreaming> kernels() {
        return List.of(WeightStreaming.get(), new WeightStreaming.Scalar());
    }

    @Test
    void theTestsRunTheVectorKernels() {
        // surefire starts the JVM with --add-modules jdk.incubator.vector (pom.xml): else this suite tests the fallback only
        assertTrue(WeightStreaming.vectorized(), WeightStreaming.describe());
    }

    @Test
    void positionsAreAPermutationWithinEachBlock() {
        for (Precision p : List.of(Precision.INT8, Precision.BFLOAT16)) {
            int block = WeightStreaming.block(p);
            for (int b = 0; b < 3; b++) {
                Set<Integer> seen = new HashSet<>();
                for (int k = b * block; k < (b + 1) * block; k++) {
                    int at = WeightStreaming.position(p, k);
                    assertTrue(at >= b * block && at < (b + 1) * block, p + " value " + k + " left its block: " + at);
                    seen.add(at);
                }
                assertEquals(block, seen.size(), p + ": two values share a place");
            }
        }
    }

    @Test
    void productsMatchForEveryRowCountAndShape() {
        long seed = 1;
        for (Precision p : List.of(Precision.INT8, Precision.BFLOAT16)) {
            // out, in, values per int8 scale: one group, a group per block, groups of several blocks, a whole row
            for (int[] shape : new int[][] {{1, 64, 64}, {37, 128, 64}, {200, 192, 64}, {3, 640, 128}, {5, 640, 640}, {9, 384, 192}}) {
                Case c = Case.random(p, shape[0], shape[1], shape[2], seed++);
                for (WeightStreaming k : kernels()) {
                    for (int rows = 1; rows <= 9; rows++) {
                        c.check(k, rows, seed++);
                    }
                }
            }
        }
    }

    @Test
    void extremeWeightsDoNotOverflowTheWidening() {
        // int8's -127 and 127 and bfloat16's largest finite values widen exactly
        for (Precision p : List.of(Precision.INT8, Precision.BFLOAT16)) {
            int in = 64;
            ByteBuffer stored = ByteBuffer.allocateDirect(in * p.bytes()).order(ByteOrder.LITTLE_ENDIAN);
            float[] x = new float[in];
            double exact = 0;
            for (int k = 0; k < in; k++) {
                float v;
                if (p == Precision.INT8) {
                    byte q = (byte) (k % 2 == 0 ? 127 : -127);
                    stored.put(WeightStreaming.position(p, k), q);
                    v = q;
                } else {
                    short bits = LowPrecisionWeight.toBfloat16(k % 2 == 0 ? 1e30f : -3e-30f);
                    stored.putShort(2 * WeightStreaming.position(p, k), bits);
                    v = Float.intBitsToFloat((bits & 0xffff) << 16);
                }
                x[k] = k + 1;
                exact += (double) v * x[k];
            }
            for (WeightStreaming kernel : kernels()) {
                float[] y = new float[1];
                kernel.multiply(p, stored, p == Precision.INT8 ? new float[] {1f} : null, 64, 1, in, x, 1, y);
                assertEquals(exact, y[0], Math.abs(exact) * 1e-6, kernel.name() + " " + p);
            }
        }
    }

    @Test
    void mismatchedSizesAreRefusedBeforeAnyRead() {
        ByteBuffer small = ByteBuffer.allocateDirect(64).order(ByteOrder.LITTLE_ENDIAN);
        WeightStreaming k = WeightStreaming.get();
        // a weight of 2 x 64 int8 needs 128 bytes
        assertThrows(IllegalArgumentException.class, () -> k.multiply(Precision.INT8, small, new float[2], 64, 2, 64, new float[64], 1, new float[2]));
        // x shorter than rows x in
        assertThrows(IllegalArgumentException.class, () -> k.multiply(Precision.INT8, small, new float[1], 64, 1, 64, new float[63], 1, new float[1]));
        // in not a whole number of blocks
        assertThrows(IllegalArgumentException.class, () -> k.multiply(Precision.INT8, small, new float[1], 64, 1, 32, new float[32], 1, new float[1]));
        // int8 without a scale per group, or groups that do not divide the row
        assertThrows(IllegalArgumentException.class, () -> k.multiply(Precision.INT8, small, new float[0], 64, 1, 64, new float[64], 1, new float[1]));
        assertThrows(IllegalArgumentException.class, () -> k.multiply(Precision.INT8, small, new float[1], 48, 1, 64, new float[64], 1, new float[1]));
        assertThrows(IllegalArgumentException.class, () -> k.multiply(Precision.INT8, small, new float[1], 0, 1, 64, new float[64], 1, new float[1]));
        assertThrows(IllegalArgumentException.class, () -> k.multiply(Precision.FLOAT32, small, null, 64, 1, 64, new float[64], 1, new float[1]));
    }

    @Test
    void bfloat16RoundsToNearestEven() {
        assertEquals((short) 0x3f80, LowPrecisionWeight.toBfloat16(1f));
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to even (1)
        assertEquals((short) 0x3f80, LowPrecisionWeight.toBfloat16(1f + 0x1p-8f));
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even (1 + 2^-6)
        assertEquals((short) 0x3f82, LowPrecisionWeight.toBfloat16(1f + 3 * 0x1p-8f));
        assertEquals((short) 0xbf80, LowPrecisionWeight.toBfloat16(-1f));
        assertEquals((short) 0x7f80, LowPrecisionWeight.toBfloat16(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(Float.intBitsToFloat((LowPrecisionWeight.toBfloat16(Float.NaN) & 0xffff) << 16)));
        // the largest float rounds up to infinity, as torch's conversion does
        assertEquals((short) 0x7f80, LowPrecisionWeight.toBfloat16(Float.MAX_VALUE));
    }

    /** Row {@code o} of w [out, in] times row {@code row} of x [rows, in] in double: {sum, sum of |terms|}. */
    static double[] exactDot(float[] w, float[] x, int row, int o, int in) {
        double exact = 0;
        double magnitude = 0;
        for (int k = 0; k < in; k++) {
            double t = (double) w[o * in + k] * x[row * in + k];
            exact += t;
            magnitude += Math.abs(t);
        }
        return new double[] {exact, magnitude};
    }

    /** The decode attention's two reads of the cache in place equal exact sums, at sizes off the vector width. */
    @Test
    void attentionReadsOfTheCacheMatchExactSums() {
        java.util.Random r = new java.util.Random(11);
        for (int[] size : new int[][] {{80, 37}, {20, 5}, {64, 64}, {7, 1}}) {
            int hd = size[0];
            int c = size[1];
            int base = 3; // a head's block inside a larger array
            java.nio.ByteBuffer cache = java.nio.ByteBuffer.allocateDirect(4 * (base + hd * c)).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            float[] all = new float[base + hd * c];
            for (int i = 0; i < all.length; i++) {
                all[i] = (float) r.nextGaussian();
                cache.putFloat(4 * i, all[i]);
            }
            float[] q = new float[hd];
            float[] w = new float[c];
            for (int i = 0; i < hd; i++) {
                q[i] = (float) r.nextGaussian();
            }
            for (int i = 0; i < c; i++) {
                w[i] = r.nextFloat();
            }
            float[] scores = new float[c + 2];
            java.util.Arrays.fill(scores, 9f); // overwritten, not added to
            float[] ctx = new float[hd + 4];
            java.util.Arrays.fill(ctx, 1f);     // added to
            for (WeightStreaming k : java.util.List.of(WeightStreaming.get(), new WeightStreaming.Scalar())) {
                k.keyScores(cache, base, hd, c, q, scores);
                for (int p = 0; p < c; p++) {
                    double exact = 0;
                    double magnitude = 0;
                    for (int j = 0; j < hd; j++) {
                        exact += (double) q[j] * all[base + j * c + p];
                        magnitude += Math.abs((double) q[j] * all[base + j * c + p]);
                    }
                    assertEquals(exact, scores[p], 1e-6 * magnitude + 1e-6, k.name() + " score " + p);
                }
                assertEquals(9f, scores[c + 1]);
                float[] out = ctx.clone();
                k.weightedValues(cache, base, c, hd, w, out, 2);
                for (int h = 0; h < hd; h++) {
                    double exact = 1;
                    double magnitude = 1;
                    for (int p = 0; p < c; p++) {
                        exact += (double) w[p] * all[base + p * hd + h];
                        magnitude += Math.abs((double) w[p] * all[base + p * hd + h]);
                    }
                    assertEquals(exact, out[2 + h], 1e-6 * magnitude, k.name() + " value " + h);
                }
                assertEquals(1f, out[0]);
                assertEquals(1f, out[hd + 3]);
            }
            assertThrows(IllegalArgumentException.class, () -> WeightStreaming.get().keyScores(cache, base + 1, hd, c, q, scores));
        }
    }
}
