package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.weights.LoadedTensor;
import io.blip2stream.model.weights.SafetensorsWriter;
import io.blip2stream.model.weights.Weights;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * AdamW (Loshchilov and Hutter), as torch.optim.AdamW: decoupled weight decay {@code p -= lr * wd * p}, then the
 * Adam step with bias correction. As in LAVIS (BLIP-2's code), arrays of fewer than two axes (biases, norms, the
 * temperature) get no weight decay. The paper's settings: beta1 0.9, beta2 0.98, weight decay 0.05.
 */
final class AdamW {
    static final float BETA1 = 0.9f;
    static final float BETA2 = 0.98f;
    static final float EPS = 1e-8f;
    static final float WEIGHT_DECAY = 0.05f;

    private final List<LoadedTensor> params;
    private final List<NDArray> m = new ArrayList<>(); // first moments, as the arrays
    private final List<NDArray> v = new ArrayList<>(); // second moments
    private int t;

    AdamW(List<LoadedTensor> params, NDManager manager) {
        this.params = params;
        for (LoadedTensor p : params) {
            m.add(manager.zeros(p.array().getShape()));
            v.add(manager.zeros(p.array().getShape()));
        }
    }

    int steps() {
        return t;
    }

    /**
     * One update from the gradients now held by the arrays, which are then zeroed. The gradients are first scaled
     * so that their global L2 norm is at most {@code maxNorm} (torch.nn.utils.clip_grad_norm_); a step whose norm is
     * not finite is skipped. Call outside a gradient collector.
     *
     * @return the global gradient norm before clipping (NaN or infinite when the step was skipped)
     */
    float step(float lr, float maxNorm) {
        float norm = gradientNorm();
        if (!Float.isFinite(norm)) {
            for (LoadedTensor p : params) {
                try (NDArray g = p.array().getGradient()) {
                    zero(g);
                }
            }
            return norm;
        }
        float clip = norm > maxNorm ? maxNorm / (norm + 1e-6f) : 1f;
        t++;
        float c1 = 1 - (float) Math.pow(BETA1, t);
        float c2 = 1 - (float) Math.pow(BETA2, t);
        // every temporary is closed here: the arrays live in the model's manager, not in a step's scope
        for (int i = 0; i < params.size(); i++) {
            NDArray p = params.get(i).array();
            NDArray mi = m.get(i);
            NDArray vi = v.get(i);
            try (NDArray g = p.getGradient()) {
                if (clip != 1f) {
                    g.muli(clip);
                }
                if (p.getShape().dimension() >= 2) {
                    p.muli(1 - lr * WEIGHT_DECAY);
                }
                try (NDArray scaled = g.mul(1 - BETA1)) {
                    mi.muli(BETA1).addi(scaled);
                }
                try (NDArray squared = g.mul(g)) {
                    vi.muli(BETA2).addi(squared.muli(1 - BETA2));
                }
                try (NDArray mHat = mi.div(c1); NDArray vHat = vi.div(c2); NDArray denom = vHat.sqrt()) {
                    p.subi(mHat.divi(denom.addi(EPS)).muli(lr));
                }
                g.muli(0f); // finite here, so this zeroes it
            }
        }
        return norm;
    }

    private static NDArray copy(NDArray mapped) {
        NDArray own = mapped.duplicate();
        mapped.close();
        return own;
    }

    /** Sets a gradient to zero in place (a fill, so that NaNs go too). */
    private static void zero(NDArray g) {
        g.set(new ai.djl.ndarray.index.NDIndex(":"), 0f);
    }

    /** Global L2 norm of the gradients (for the progress line), without changing them. */
    float gradientNorm() {
        double s = 0;
        for (LoadedTensor p : params) {
            try (NDArray g = p.array().getGradient(); NDArray sq = g.mul(g); NDArray sum = sq.sum()) {
                s += sum.getFloat();
            }
        }
        return (float) Math.sqrt(s);
    }

    /** Writes the moments and the step count as {@code dir/model.safetensors}. */
    void save(Path dir) throws IOException {
        java.nio.file.Files.createDirectories(dir);
        SafetensorsWriter w = new SafetensorsWriter();
        for (int i = 0; i < params.size(); i++) {
            long[] shape = params.get(i).array().getShape().getShape().clone();
            w.put("m." + params.get(i).key(), m.get(i).toFloatArray(), shape);
            w.put("v." + params.get(i).key(), v.get(i).toFloatArray(), shape);
        }
        w.put("t", new float[] {t}, 1);
        w.write(dir.resolve("model.safetensors"));
    }

    void load(Path dir) throws IOException {
        try (Weights w = Weights.open(dir)) {
            for (int i = 0; i < params.size(); i++) {
                long[] shape = params.get(i).array().getShape().getShape().clone();
                // copies: PyTorch would wrap the memory-mapped (read-only, soon unmapped) file without copying it
                NDArray mi = copy(w.load(m.get(i).getManager(), "m." + params.get(i).key(), shape));
                NDArray vi = copy(w.load(v.get(i).getManager(), "v." + params.get(i).key(), shape));
                m.get(i).close();
                v.get(i).close();
                m.set(i, mi);
                v.set(i, vi);
            }
            t = (int) w.floats("t", 1).get(0);
        }
    }
}
