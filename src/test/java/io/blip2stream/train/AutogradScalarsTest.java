package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.nn.Ops;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A garbage collection between the forward and the backward pass must not change the gradients. DJL's PyTorch
 * scalar ops ({@code mul(Number)}) build the scalar on a Java buffer and close it at once while autograd keeps it;
 * once collected, the backward pass read freed memory (gradient norms of 1e30, NaN, steps skipped in training).
 * The attention scale and the losses' scalars go through {@link Ops#mulScalar}, which keeps them alive.
 */
class AutogradScalarsTest {

    static float[] gradient(boolean collectGarbage) throws InterruptedException {
        try (NDManager m = Engines.newManager(Engines.Kind.PYTORCH)) {
            SplittableRandom r = new SplittableRandom(7);
            float[] init = new float[32 * 32];
            for (int i = 0; i < init.length; i++) {
                init[i] = (float) (r.nextDouble() - 0.5) * 0.2f;
            }
            float[] in = new float[4 * 6 * 32];
            for (int i = 0; i < in.length; i++) {
                in[i] = (float) (r.nextDouble() - 0.5);
            }
            NDArray w = m.create(init, new Shape(32, 32));
            w.setRequiresGradient(true);
            try (NDManager scope = m.newSubManager(); GradientCollector gc = m.getEngine().newGradientCollector()) {
                NDArray x = scope.create(in, new Shape(4, 6, 32)).matMul(w);                                  // (B, T, D)
                NDArray ctx = Ops.mergeHeads(Ops.attention(Ops.splitHeads(x, 4), Ops.splitHeadsTransposed(x, 4),
                        Ops.splitHeads(x, 4), null, 0.35f));                                               // (B, T, D)
                int[] labels = new int[24];
                for (int i = 0; i < labels.length; i++) {
                    labels[i] = i % 32;
                }
                NDArray loss = Losses.crossEntropy(ctx.reshape(24, 32), Losses.oneHot(labels, 32));
                if (collectGarbage) {
                    for (int i = 0; i < 3; i++) {
                        System.gc();
                        Thread.sleep(50);
                    }
                }
                gc.backward(loss);
                return w.getGradient().toFloatArray();
            }
        }
    }

    @Test
    void aCollectionBetweenForwardAndBackwardLeavesTheGradientsAsTheyAre() throws Exception {
        float[] quiet = gradient(false);
        for (float v : quiet) {
            assertTrue(Float.isFinite(v));
        }
        for (int run = 0; run < 3; run++) {
            assertArrayEquals(quiet, gradient(true), 1e-6f, "run " + run);
        }
    }
}
