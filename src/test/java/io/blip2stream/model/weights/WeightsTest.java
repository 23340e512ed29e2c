package io.blip2stream.model.weights;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WeightsTest {
    @TempDir
    Path dir;

    static final float[] VALUES = {0.5f, -1.25f, 3f, 0f, 1024f, -0.0078125f};

    /** A safetensors file with one tensor of raw bytes. */
    static void writeRaw(Path file, String name, String dtype, long[] shape, byte[] data) throws IOException {
        StringBuilder s = new StringBuilder("[");
        for (int i = 0; i < shape.length; i++) {
            s.append(i > 0 ? "," : "").append(shape[i]);
        }
        s.append("]");
        String json = "{\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + s + ",\"data_offsets\":[0," + data.length + "]}}";
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        Files.write(file, b.array());
    }

    static byte[] halves(float[] v, boolean bf16) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            int bits = Float.floatToIntBits(f);
            if (bf16) {
                b.putShort((short) (bits >>> 16));
            } else {
                int sign = (bits >>> 16) & 0x8000;
                int exp = ((bits >>> 23) & 0xff) - 127 + 15;
                int mant = (bits >>> 13) & 0x3ff;
                b.putShort((short) (f == 0f ? sign : sign | (exp << 10) | mant));
            }
        }
        return b.array();
    }

    @Test
    void readsF32F16AndBf16AsFloat32() throws Exception {
        Files.createDirectories(dir.resolve("f16"));
        writeRaw(dir.resolve("f16/model.safetensors"), "w", "F16", new long[] {2, 3}, halves(VALUES, false));
        Files.createDirectories(dir.resolve("bf16"));
        writeRaw(dir.resolve("bf16/model.safetensors"), "w", "BF16", new long[] {2, 3}, halves(VALUES, true));
        Files.createDirectories(dir.resolve("f32"));
        new SafetensorsWriter().put("w", VALUES, 2, 3).write(dir.resolve("f32/model.safetensors"));
        try (NDManager m = Engines.newManager(Engines.Kind.TENSORFLOW)) {
            for (String d : new String[] {"f16", "bf16", "f32"}) {
                try (Weights w = Weights.open(dir.resolve(d))) {
                    NDArray a = w.load(m, "w", 2, 3);
                    assertArrayEquals(VALUES, a.toFloatArray(), d);
                }
            }
        }
    }

    @Test
    void loadsTheTransposeOfAMatrixOrOfATensorReadAsOne() throws Exception {
        float[] v = new float[3 * 70 * 2]; // (3, 70, 2): rows of 140 cross the 64-wide blocks of the copy
        for (int i = 0; i < v.length; i++) {
            v[i] = i;
        }
        new SafetensorsWriter().put("w", v, 3, 70, 2).write(dir.resolve("model.safetensors"));
        for (Engines.Kind kind : Engines.Kind.values()) {
            try (Weights w = Weights.open(dir); NDManager m = Engines.newManager(kind)) {
                NDArray t = w.loadTransposed(m, "w", 3, 70, 2);
                assertEquals(new ai.djl.ndarray.types.Shape(140, 3), t.getShape());
                float[] got = t.toFloatArray();
                for (int r = 0; r < 3; r++) {
                    for (int c = 0; c < 140; c++) {
                        assertEquals(v[r * 140 + c], got[c * 3 + r], kind + " at (" + c + ", " + r + ")");
                    }
                }
                // a GEMM against it is x @ W^T
                NDArray x = m.create(new float[140], new ai.djl.ndarray.types.Shape(1, 140)).add(1f);
                assertEquals(java.util.stream.IntStream.range(0, 140).mapToDouble(c -> v[140 + c]).sum(),
                        x.matMul(t).toFloatArray()[1], 1e-1);
            }
        }
    }

    @Test
    void halfPrecisionSpecialValues() {
        assertTrue(StoredValues.Half.toFloat((short) 0x0001) == 0x1p-24f, "smallest subnormal");
        assertTrue(StoredValues.Half.toFloat((short) 0x7c00) == Float.POSITIVE_INFINITY);
        assertTrue(Float.isNaN(StoredValues.Half.toFloat((short) 0x7e00)));
        assertTrue(StoredValues.Half.toFloat((short) 0xc000) == -2f);
        assertTrue(StoredValues.Half.toFloat((short) 0x3555) == 0.333251953125f);
    }

    @Test
    void readsShardsListedInTheIndex() throws Exception {
        new SafetensorsWriter().put("a", new float[] {1, 2}, 2).write(dir.resolve("model-00001-of-00002.safetensors"));
        new SafetensorsWriter().put("b", new float[] {3}, 1).write(dir.resolve("model-00002-of-00002.safetensors"));
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}");
        try (Weights w = Weights.open(dir)) {
            assertArrayEquals(new float[] {3}, floats(w, "b"));
            assertArrayEquals(new float[] {1, 2}, floats(w, "a"));
        }
    }

    @Test
    void missingOrMisShapedTensorsAreNamed() throws Exception {
        new SafetensorsWriter().put("vision_model.embeddings.class_embedding", new float[4], 1, 1, 4)
                .write(dir.resolve("model.safetensors"));
        try (Weights w = Weights.open(dir); NDManager m = Engines.newManager(Engines.Kind.TENSORFLOW)) {
            var missing = assertThrows(IllegalArgumentException.class, () -> w.load(m, "vision_model.post_layernorm.weight", 4));
            assertTrue(missing.getMessage().contains("vision_model.post_layernorm.weight"), missing.getMessage());
            var shape = assertThrows(IllegalArgumentException.class, () -> w.load(m, "vision_model.embeddings.class_embedding", 1, 1, 8));
            assertTrue(shape.getMessage().contains("vision_model.embeddings.class_embedding")
                    && shape.getMessage().contains("[1, 1, 4]") && shape.getMessage().contains("[1, 1, 8]"), shape.getMessage());
        }
    }

    @Test
    void aFolderWithoutWeightsOrWithABrokenFileFailsClearly() throws Exception {
        var none = assertThrows(IOException.class, () -> Weights.open(dir));
        assertTrue(none.getMessage().contains("no weights"), none.getMessage());
        Files.write(dir.resolve("model.safetensors"), new byte[] {1, 2, 3});
        var broken = assertThrows(IOException.class, () -> Weights.open(dir));
        assertTrue(broken.getMessage().contains("not a safetensors file"), broken.getMessage());
    }

    static float[] floats(Weights w, String name) {
        var fb = w.floats(name);
        float[] out = new float[fb.remaining()];
        fb.get(out);
        return out;
    }
}
