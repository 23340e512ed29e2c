package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.weights.Precision;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** oneDNN's layer norm and self-attention compute what the engine's ops compute, to float32 rounding. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OneDnnLayersTest {
    NDManager manager;

    @BeforeAll
    void start() {
        manager = Engines.newManager(Engines.Kind.TENSORFLOW);
        manager.getEngine().setRandomSeed(7);
    }

    @AfterAll
    void end() {
        manager.close();
    }

    static void assertClose(NDArray expected, NDArray got, double tol, String what) {
        assertEquals(expected.getShape(), got.getShape(), what);
        float[] e = expected.toFloatArray();
        float[] g = got.toFloatArray();
        for (int i = 0; i < e.length; i++) {
            assertEquals(e[i], g[i], tol * (1 + Math.abs(e[i])), what + " at " + i);
        }
    }

    @Test
    void onlyLowPrecisionModelsOnTheCpuUseIt() {
        assertFalse(OneDnn.serves(Precision.FLOAT32, manager), "float32 keeps the engine's ops: parity unchanged");
        assertEquals(OneDnn.available(), OneDnn.serves(Precision.BFLOAT16, manager));
        assertEquals(OneDnn.available(), OneDnnAttention.serves(Precision.INT8, manager));
        try (NDManager pytorch = Engines.newManager(Engines.Kind.PYTORCH)) {
            assertFalse(OneDnn.serves(Precision.BFLOAT16, pytorch), "its arrays are read in place: TensorFlow only");
        }
    }

    @Test
    void selfAttentionMatchesTheEnginesAtEveryBatchAndOddSizes() {
        if (!OneDnn.available()) {
            return; // OneDnnWeightTest fails where a CPU that should have oneDNN does not
        }
        for (int[] c : new int[][] {{1, 257, 4, 16}, {3, 17, 2, 8}, {8, 5, 3, 7}}) {
            int b = c[0];
            int s = c[1];
            int n = c[2];
            int h = c[3];
            float scale = (float) Math.pow(h, -0.5);
            try (NDManager scope = manager.newSubManager()) {
                NDArray qkv = scope.randomNormal(new Shape(b, s, 3L * n * h)).mul(2f);
                NDArray split = qkv.reshape(b, s, 3, n, h);
                NDArray q = split.get(new NDIndex(":, :, 0")).transpose(0, 2, 1, 3);
                NDArray kT = split.get(new NDIndex(":, :, 1")).transpose(0, 2, 3, 1);
                NDArray v = split.get(new NDIndex(":, :, 2")).transpose(0, 2, 1, 3);
                NDArray expected = Ops.mergeHeads(Ops.attention(q, kT, v, null, scale));
                assertClose(expected, OneDnnAttention.selfAttention(qkv, n, scale), 1e-5, "attention " + java.util.Arrays.toString(c));
            }
        }
        try (NDManager scope = manager.newSubManager()) {
            NDArray odd = scope.randomNormal(new Shape(1, 4, 10));
            assertThrows(IllegalArgumentException.class, () -> OneDnnAttention.selfAttention(odd, 3, 1f), "10 is not 3 x heads x H");
        }
    }

    @Test
    void layerNormMatchesTheEnginesOverRowsOfAnyCount() {
        if (!OneDnn.available()) {
            return;
        }
        int d = 40;
        try (NDManager scope = manager.newSubManager()) {
            NDArray gamma = scope.randomNormal(new Shape(d));
            NDArray beta = scope.randomNormal(new Shape(d));
            OneDnnLayerNorm fused = new OneDnnLayerNorm(gamma.toFloatArray(), beta.toFloatArray(), 1e-5f);
            LayerNorm norm = new LayerNorm(gamma, beta, 1e-5f, scope.create(1e-5f), fused);
            LayerNorm plain = new LayerNorm(gamma, beta, 1e-5f, scope.create(1e-5f), null);
            for (Shape shape : new Shape[] {new Shape(1, d), new Shape(3, 7, d), new Shape(2, 257, d)}) {
                NDArray x = scope.randomNormal(shape).mul(3f).add(1.5f); // an offset the mean must remove
                assertClose(plain.forward(x), norm.forward(x), 2e-5, "layer norm " + shape);
            }
            assertThrows(IllegalArgumentException.class, () -> new OneDnnLayerNorm(new float[3], new float[4], 1e-5f));
        }
    }
}
