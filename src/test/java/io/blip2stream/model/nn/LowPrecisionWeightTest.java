package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.weights.Precision;
import io.blip2stream.model.weights.SafetensorsWriter;
import io.blip2stream.model.weights.Weights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bfloat16 and int8 Linear layers loaded from a checkpoint, on TensorFlow, against the float32 layer of the same
 * tensors: streamed (Java) and engine-side (many rows), rows from 1 to 20, a row length that needs padding, q/k/v
 * fused with a scale, biases; each within the error its rounding allows.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LowPrecisionWeightTest {
    static final int IN = 37;   // not a whole block: padded to 64 in the streamed layout
    static final int OUT = 50;

    @TempDir
    static Path dir;
    NDManager manager;
    Weights weights;
    float[] w;
    float[] b;

    @BeforeAll
    void setUp() throws Exception {
        manager = Engines.newManager(Engines.Kind.TENSORFLOW);
        Random r = new Random(7);
        w = new float[OUT * IN];
        for (int i = 0; i < w.length; i++) {
            // rows of very different magnitudes: a per-row int8 scale must follow them
            w[i] = (float) r.nextGaussian() * (i / IN % 5 == 0 ? 10f : 0.05f);
        }
        b = new float[OUT];
        for (int i = 0; i < OUT; i++) {
            b[i] = (float) r.nextGaussian();
        }
        float[] q = new float[IN * IN];
        float[] k = new float[IN * IN];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) r.nextGaussian();
            k[i] = (float) r.nextGaussian();
        }
        new SafetensorsWriter().put("fc.weight", w, OUT, IN).put("fc.bias", b, OUT)
                .put("q.weight", q, IN, IN).put("k.weight", k, IN, IN).write(dir.resolve("model.safetensors"));
        weights = Weights.open(dir);
    }

    @AfterAll
    void tearDown() {
        weights.close();
        manager.close();
    }

    float[] x(int rows, long seed) {
        Random r = new Random(seed);
        float[] x = new float[rows * IN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return x;
    }

    /** |y - y32| within {@code relative} of sum |w x| per element, plus int8's half step per weight. */
    void assertClose(String what, Precision p, float[] wt, int out, float[] x, int rows, float[] bias, float[] y, double relative) {
        for (int row = 0; row < rows; row++) {
            for (int o = 0; o < out; o++) {
                double exact = bias == null ? 0 : bias[o];
                double magnitude = 0;
                double maxW = 0;
                double sumX = 0;
                for (int k = 0; k < IN; k++) {
                    exact += (double) wt[o * IN + k] * x[row * IN + k];
                    magnitude += Math.abs((double) wt[o * IN + k] * x[row * IN + k]);
                    maxW = Math.max(maxW, Math.abs(wt[o * IN + k]));
                    sumX += Math.abs(x[row * IN + k]);
                }
                // int8: half a step of the row's largest weight for each value (a group's step is at most that)
                double tol = relative * magnitude + (p == Precision.INT8 ? maxW / 254 * sumX : 0) + 1e-5;
                double err = Math.abs(y[row * out + o] - exact);
                assertTrue(err <= tol, what + " rows " + row + "/" + rows + " out " + o + ": " + y[row * out + o] + " vs " + exact
                        + " (error " + err + ", allowed " + tol + ")");
            }
        }
    }

    @Test
    void streamedAndEngineProductsMatchFloat32WithinTheirRounding() {
        for (Precision p : List.of(Precision.BFLOAT16, Precision.INT8)) {
            for (boolean many : List.of(false, true)) {
                Weights view = many ? weights.withPrecision(p).forManyRows() : weights.withPrecision(p);
                Linear l = Linear.load(view, manager, "fc", IN, OUT, true);
                assertEquals(p, l.precision());
                // bfloat16 and int8 on a CPU with oneDNN: packed for it (int8 with a scale per output); else streamed,
                // bfloat16 only for few rows
                boolean packed = OneDnnWeight.available() && (p == Precision.BFLOAT16 || LowPrecisionWeight.int8Packs());
                assertEquals(packed, l.lowPrecision().packed());
                assertEquals(!packed && (!many || p == Precision.INT8), l.lowPrecision().streamed());
                for (int rows : new int[] {1, 3, 4, 8, 9, 20}) {
                    float[] x = x(rows, rows);
                    try (NDManager scope = manager.newSubManager()) {
                        NDArray y = l.forward(scope.create(x, new Shape(rows, IN)));
                        assertEquals(new Shape(rows, OUT), y.getShape());
                        // bfloat16 weights: 2^-9 relative each; oneDNN and the engine (many rows, or more than a
                        // decode step's) also round x (the engine its result too) to bfloat16
                        boolean engine = packed || many && p == Precision.BFLOAT16 || rows > LowPrecisionWeight.STREAM_ROWS;
                        assertClose(p + (engine ? " engine" : " streamed") + " rows " + rows, p, w, OUT, x, rows, b, y.toFloatArray(),
                                engine ? 0.012 : 0.004);
                    }
                }
            }
        }
    }

    /** The fused epilogue equals the same ops one after another in every layout, and a wrong residual is refused. */
    @Test
    void anEpilogueEqualsItsOpsAndRefusesAResidualOfAnotherShape() {
        for (Precision p : List.of(Precision.BFLOAT16, Precision.INT8)) {
            Linear l = Linear.load(weights.withPrecision(p).forManyRows(), manager, "fc", IN, OUT, true);
            try (NDManager scope = manager.newSubManager()) {
                NDArray x = scope.create(x(9, 4), new Shape(9, IN));
                NDArray r = scope.randomNormal(new Shape(9, OUT));
                NDArray fused = l.forward(x, "gelu", r);
                NDArray apart = Ops.activation("gelu", l.forward(x)).add(r);
                float[] a = fused.toFloatArray();
                float[] e = apart.toFloatArray();
                for (int i = 0; i < e.length; i++) {
                    assertEquals(e[i], a[i], 1e-4 * (1 + Math.abs(e[i])), p + " at " + i);
                }
                NDArray wrong = scope.zeros(new Shape(9, OUT + 1));
                if (l.lowPrecision().packed()) {
                    assertThrows(IllegalArgumentException.class, () -> l.forward(x, null, wrong));
                }
            }
        }
    }

    @Test
    void aThreeAxisActivationKeepsItsLeadingAxes() {
        Linear l = Linear.load(weights.withPrecision(Precision.INT8), manager, "fc", IN, OUT, true);
        try (NDManager scope = manager.newSubManager()) {
            NDArray y = l.forward(scope.create(x(6, 3), new Shape(2, 3, IN)));
            assertEquals(new Shape(2, 3, OUT), y.getShape());
        }
    }

    @Test
    void fusedPartsKeepTheirOrderAndScale() {
        float scale = 0.125f;
        for (Precision p : List.of(Precision.BFLOAT16, Precision.INT8)) {
            LowPrecisionWeight fused = LowPrecisionWeight.load(weights.withPrecision(p), manager, p, IN,
                    List.of(new LowPrecisionWeight.Part("q.weight", IN, scale), new LowPrecisionWeight.Part("k.weight", IN, 1f)));
            assertEquals(2 * IN, fused.out());
            float[] expectedW = new float[2 * IN * IN];
            var qf = weights.floats("q.weight", IN, IN);
            var kf = weights.floats("k.weight", IN, IN);
            for (int i = 0; i < IN * IN; i++) {
                expectedW[i] = qf.get(i) * scale;
                expectedW[IN * IN + i] = kf.get(i);
            }
            float[] x = x(2, 11);
            assertClose(p + " fused", p, expectedW, 2 * IN, x, 2, null, fused.forward(x, 2), 0.004);
        }
    }

    @Test
    void aBfloat16CheckpointKeepsItsValuesExactly() throws Exception {
        // bfloat16 values as stored: the streamed product is then float32 arithmetic on exactly those values
        Path bf = dir.resolve("bf16");
        Files.createDirectories(bf);
        Random r = new Random(3);
        float[] v = new float[4 * 64];
        ByteBuffer raw = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < v.length; i++) {
            short bits = LowPrecisionWeight.toBfloat16((float) r.nextGaussian());
            v[i] = Float.intBitsToFloat((bits & 0xffff) << 16);
            raw.putShort(bits);
        }
        String json = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4,64],\"data_offsets\":[0," + raw.capacity() + "]}}";
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer file = ByteBuffer.allocate(8 + h.length + raw.capacity()).order(ByteOrder.LITTLE_ENDIAN);
        file.putLong(h.length).put(h).put(raw.array());
        Files.write(bf.resolve("model.safetensors"), file.array());
        try (Weights bw = Weights.open(bf)) {
            assertEquals("BF16", bw.storedDtype());
            LowPrecisionWeight l = LowPrecisionWeight.load(bw.withPrecision(Precision.BFLOAT16), manager, Precision.BFLOAT16, 64,
                    List.of(new LowPrecisionWeight.Part("w", 4, 1f)));
            float[] x = new float[64];
            x[5] = 1f; // picks column 5 of each row: exactly the stored value
            float[] y = l.forward(x, 1);
            for (int o = 0; o < 4; o++) {
                assertEquals(v[o * 64 + 5], y[o], 0f, "row " + o);
            }
        }
    }

    @Test
    void pytorchIsRefusedNamingTheWayOut() {
        try (NDManager pt = Engines.newManager(Engines.Kind.PYTORCH)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Linear.load(weights.withPrecision(Precision.INT8), pt, "fc", IN, OUT, true));
            assertTrue(e.getMessage().contains("--engine tensorflow") && e.getMessage().contains("--dtype float32"), e.getMessage());
        }
    }

    @Test
    void theInt8GroupSettingIsAMultipleOf64OrRow() {
        String before = System.getProperty("blip2.int8.group");
        try {
            for (String bad : new String[] {"48", "0", "-64", "sixty-four", "64; rm -rf /"}) {
                System.setProperty("blip2.int8.group", bad);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LowPrecisionWeight.int8Group(128), bad);
                assertTrue(e.getMessage().contains("BLIP2_INT8_GROUP"), e.getMessage());
            }
            // which layout the setting gives: unset or row packed for oneDNN (where it runs), a group size streamed,
            // a bad value refused at load naming the setting
            boolean dnn = OneDnnWeight.available();
            for (String setting : new String[] {"", "row", "64"}) {
                System.setProperty("blip2.int8.group", setting);
                Linear l = Linear.load(weights.withPrecision(Precision.INT8), manager, "fc", IN, OUT, true);
                assertEquals(dnn && !setting.equals("64"), l.lowPrecision().packed(), "'" + setting + "'");
                assertEquals(!l.lowPrecision().packed(), l.lowPrecision().streamed(), "'" + setting + "'");
            }
            System.setProperty("blip2.int8.group", "sixty-four");
            IllegalArgumentException atLoad = assertThrows(IllegalArgumentException.class,
                    () -> Linear.load(weights.withPrecision(Precision.INT8), manager, "fc", IN, OUT, true));
            assertTrue(atLoad.getMessage().contains("BLIP2_INT8_GROUP"), atLoad.getMessage());
            System.setProperty("blip2.int8.group", "row");
            assertEquals(640, LowPrecisionWeight.int8Group(640));
            System.setProperty("blip2.int8.group", "128");
            assertEquals(128, LowPrecisionWeight.int8Group(640));
            assertEquals(192, LowPrecisionWeight.int8Group(192), "a group that does not divide the row becomes the row");
            System.setProperty("blip2.int8.group", String.valueOf(Integer.MAX_VALUE / 64 * 64));
            assertEquals(64, LowPrecisionWeight.int8Group(64), "a group longer than the row is the row");
        } finally {
            if (before == null) {
                System.clearProperty("blip2.int8.group");
            } else {
                System.setProperty("blip2.int8.group", before);
            }
        }
        assertEquals(LowPrecisionWeight.DEFAULT_INT8_GROUP, LowPrecisionWeight.int8Group(640));
    }

    @Test
    void aZeroRowQuantizesWithoutDividingByZero() {
        ByteBuffer dst = ByteBuffer.allocate(4);
        float scale = LowPrecisionWeight.groupScale(new float[4], 0, 4);
        assertEquals(1f, scale);
        for (int k = 0; k < 4; k++) {
            dst.put(k, LowPrecisionWeight.quantize(0f, scale));
            assertEquals(0, dst.get(k));
        }
        assertEquals(127, LowPrecisionWeight.quantize(1e9f, 1f));
        assertEquals(-127, LowPrecisionWeight.quantize(-1e9f, 1f));
    }
}
