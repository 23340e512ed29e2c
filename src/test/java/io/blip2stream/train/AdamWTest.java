package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.weights.LoadedTensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** AdamW against torch.optim.AdamW's update, worked out by hand for two steps. */
class AdamWTest {

    @Test
    void updatesAsTorchAdamWWithDecoupledDecayOnMatricesOnly() {
        try (NDManager m = Engines.newManager(Engines.Kind.PYTORCH)) {
            NDArray w = m.create(new float[] {1f, -2f, 0.5f, 3f}, new Shape(2, 2));
            NDArray b = m.create(new float[] {1f, -1f});
            List<LoadedTensor> params = List.of(
                    new LoadedTensor(w, List.of(new LoadedTensor.Part("w", new long[] {2, 2}, 0, 0, 2, 1f, false))),
                    new LoadedTensor(b, List.of(new LoadedTensor.Part("b", new long[] {2}, 0, 0, 2, 1f, false))));
            w.setRequiresGradient(true);
            b.setRequiresGradient(true);
            AdamW opt = new AdamW(params, m);
            float lr = 0.1f;
            double[] pw = {1, -2, 0.5, 3};
            double[] pb = {1, -1};
            double[] mw = new double[4];
            double[] vw = new double[4];
            double[] mb = new double[2];
            double[] vb = new double[2];
            for (int step = 1; step <= 2; step++) {
                try (NDManager scope = m.newSubManager(); GradientCollector gc = m.getEngine().newGradientCollector()) {
                    // loss = sum(w^2) + sum(3 b): grad w = 2w, grad b = 3
                    NDArray loss = scope.zeros(new Shape(1)).add(w.mul(w).sum()).add(b.mul(3f).sum());
                    gc.backward(loss);
                }
                opt.step(lr, 1e9f);
                double c1 = 1 - Math.pow(0.9, step);
                double c2 = 1 - Math.pow(0.98, step);
                for (int i = 0; i < 4; i++) {
                    double g = 2 * pw[i];
                    pw[i] *= 1 - lr * 0.05;
                    mw[i] = 0.9 * mw[i] + 0.1 * g;
                    vw[i] = 0.98 * vw[i] + 0.02 * g * g;
                    pw[i] -= lr * (mw[i] / c1) / (Math.sqrt(vw[i] / c2) + 1e-8);
                }
                for (int i = 0; i < 2; i++) {
                    mb[i] = 0.9 * mb[i] + 0.1 * 3;
                    vb[i] = 0.98 * vb[i] + 0.02 * 9;
                    pb[i] -= lr * (mb[i] / c1) / (Math.sqrt(vb[i] / c2) + 1e-8);
                }
            }
            float[] gotW = w.toFloatArray();
            float[] gotB = b.toFloatArray();
            for (int i = 0; i < 4; i++) {
                assertEquals(pw[i], gotW[i], 1e-5, "w[" + i + "]");
            }
            for (int i = 0; i < 2; i++) {
                assertEquals(pb[i], gotB[i], 1e-5, "b[" + i + "] (no weight decay on 1-D arrays)");
            }
        }
    }

    @Test
    void aStepWithANonFiniteGradientIsSkippedAndLeavesTheWeightsAlone() {
        try (NDManager m = Engines.newManager(Engines.Kind.PYTORCH)) {
            NDArray w = m.create(new float[] {1f, 2f}, new Shape(1, 2));
            List<LoadedTensor> params = List.of(
                    new LoadedTensor(w, List.of(new LoadedTensor.Part("w", new long[] {1, 2}, 0, 0, 1, 1f, false))));
            w.setRequiresGradient(true);
            AdamW opt = new AdamW(params, m);
            try (NDManager scope = m.newSubManager(); GradientCollector gc = m.getEngine().newGradientCollector()) {
                NDArray loss = scope.zeros(new Shape(1)).add(w.log().mul(-1f).sqrt().sum()); // sqrt of negatives: NaN
                gc.backward(loss);
            }
            float norm = opt.step(0.1f, 1f);
            assertFalse(Float.isFinite(norm));
            assertEquals(0, opt.steps());
            float[] v = w.toFloatArray();
            assertEquals(1f, v[0]);
            assertEquals(2f, v[1]);
            try (NDArray g = w.getGradient()) {
                assertEquals(0f, g.abs().sum().getFloat(), "the bad gradient is dropped");
            }
        }
    }
}
