package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.nn.Ops;

/** Loss functions on DJL arrays (differentiable on the PyTorch engine). */
final class Losses {
    private Losses() {}

    /**
     * Mean cross entropy of logits [N, C] against target distributions [N][C] given in Java (one-hot, soft, or all
     * zero for a row that does not count), over the rows that count.
     */
    static NDArray crossEntropy(NDArray logits, float[][] targets) {
        int n = targets.length;
        int c = targets[0].length;
        float[] flat = new float[n * c];
        int counted = 0;
        for (int i = 0; i < n; i++) {
            float s = 0;
            for (int j = 0; j < c; j++) {
                flat[i * c + j] = targets[i][j];
                s += targets[i][j];
            }
            counted += s > 0 ? 1 : 0;
        }
        NDManager scope = logits.getManager();
        NDArray t = scope.create(flat, new Shape(n, c));
        return Ops.mulScalar(logits.logSoftmax(1).mul(t).sum(), -1f / Math.max(1, counted)); // ()
    }

    /** One-hot targets [N][C] of labels; a negative label gives a zero row (ignored). */
    static float[][] oneHot(int[] labels, int classes) {
        float[][] t = new float[labels.length][classes];
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] >= 0) {
                t[i][labels[i]] = 1f;
            }
        }
        return t;
    }

    /** Fraction of rows whose arg-max is the label (rows with a negative label left out). */
    static double accuracy(NDArray logits, int[] labels) {
        return accuracy(logits.toFloatArray(), labels);
    }

    /** The same on logits already copied to Java, [N * C]. */
    static double accuracy(float[] v, int[] labels) {
        int c = v.length / labels.length;
        int right = 0;
        int counted = 0;
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] < 0) {
                continue;
            }
            right += argmax(v, i, c) == labels[i] ? 1 : 0;
            counted++;
        }
        return counted == 0 ? 0 : (double) right / counted;
    }

    /** The index of the largest of {@code v[row * width .. (row + 1) * width)}, less the row's start. */
    static int argmax(float[] v, int row, int width) {
        int best = 0;
        for (int j = 1; j < width; j++) {
            if (v[row * width + j] > v[row * width + best]) {
                best = j;
            }
        }
        return best;
    }

    /** x / ||x|| over the last axis. */
    static NDArray l2Normalize(NDArray x) {
        int last = x.getShape().dimension() - 1;
        return x.div(x.mul(x).sum(new int[] {last}, true).add(1e-12f).sqrt());
    }
}
