package io.blip2stream.model.llm.opt;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.nn.AttentionMask;
import io.blip2stream.model.nn.Ops;

import java.util.Arrays;

/**
 * The per-request state of OPT decoding: the KV cache and each row's attention mask (left padding).
 * Positions follow transformers: {@code cumsum(mask) * mask - 1}, so padding does not shift a row's positions.
 */
public final class OptSession implements DecoderSession {
    /** What a masked score becomes: torch.finfo(float32).min, as transformers uses. */

    private final OptForCausalLM model;
    private boolean closed;
    private final NDManager manager;
    private final KvCache cache;
    private int[][] mask;   // (B, S) 1 real, 0 padding
    private int[] realCount; // per row, the number of real tokens so far
    private final float[][] promptLogits; // (B, V) logits after the last prompt position

    OptSession(OptForCausalLM model, NDManager manager, float[] inputsEmbeds, int[][] attentionMask) {
        this.model = model;
        this.manager = manager;
        this.cache = new KvCache(manager, model.config().numHiddenLayers());
        int b = attentionMask.length;
        int t = attentionMask[0].length;
        this.mask = new int[b][];
        this.realCount = new int[b];
        int[][] positions = new int[b][t];
        for (int i = 0; i < b; i++) {
            mask[i] = attentionMask[i].clone();
            int c = 0;
            for (int j = 0; j < t; j++) {
                c += mask[i][j];
                positions[i][j] = c * mask[i][j] - 1;
            }
            realCount[i] = c;
        }
        try (NDManager scope = manager.newSubManager()) {
            NDArray x = Ops.create(scope, inputsEmbeds, b, t, model.inputWidth());   // (B, T, W)
            NDArray m = Ops.create(scope, AttentionMask.causal(mask, 0, t), b, 1, t, t);        // (B, 1, T, T)
            NDArray h = model.forward(x, positions, m, cache);                           // (B*T, W)
            this.promptLogits = lastRowLogits(h, b, t);
        }
    }

    /** Runs the prompt again and returns its logits at every position, [B][T][V] (for parity checks). */
    public static float[][][] fullLogits(OptForCausalLM model, float[] inputsEmbeds, int[][] attentionMask) {
        int b = attentionMask.length;
        int t = attentionMask[0].length;
        try (NDManager scope = model.manager().newSubManager()) {
            NDArray x = Ops.create(scope, inputsEmbeds, b, t, model.inputWidth());
            float[] flat = model.logitsOfSequence(x, attentionMask).toFloatArray(); // (B*T, V)
            int v = model.config().vocabSize();
            float[][][] out = new float[b][t][];
            for (int i = 0; i < b; i++) {
                for (int j = 0; j < t; j++) {
                    out[i][j] = Arrays.copyOfRange(flat, (i * t + j) * v, (i * t + j + 1) * v);
                }
            }
            return out;
        }
    }

    /** hidden [B*T, W] to the logits after each row's last position, [B][V]. */
    private float[][] lastRowLogits(NDArray hidden, int b, int t) {
        NDArray last = t == 1 ? hidden
                : hidden.reshape(b, t, hidden.getShape().get(1)).get(new NDIndex(":, {}, :", t - 1)); // (B, W)
        float[] flat = model.logits(last).toFloatArray();                                         // (B, V)
        int v = model.config().vocabSize();
        float[][] out = new float[b][];
        for (int i = 0; i < b; i++) {
            out[i] = Arrays.copyOfRange(flat, i * v, (i + 1) * v);
        }
        return out;
    }

    @Override
    public int rows() {
        return mask.length;
    }

    @Override
    public int vocabSize() {
        return model.config().vocabSize();
    }

    @Override
    public float[][] promptLogits() {
        return promptLogits;
    }

    @Override
    public float[][] step(int[] tokens) {
        int b = mask.length;
        if (tokens.length != b) {
            throw new IllegalArgumentException("expected " + b + " tokens, got " + tokens.length);
        }
        int past = mask[0].length;
        int w = model.inputWidth();
        float[] emb = new float[b * w];
        int[][] positions = new int[b][1];
        for (int i = 0; i < b; i++) {
            model.embedToken(tokens[i], emb, i * w);
            mask[i] = Arrays.copyOf(mask[i], past + 1);
            mask[i][past] = 1;
            positions[i][0] = realCount[i]; // cumsum(mask) - 1 at the new position
            realCount[i]++;
        }
        try (NDManager scope = manager.newSubManager()) {
            NDArray x = Ops.create(scope, emb, b, 1, w);                                  // (B, 1, W)
            NDArray m = Ops.create(scope, AttentionMask.causal(mask, past, 1), b, 1, 1, past + 1); // (B, 1, 1, S)
            if (cache.length() > 0 && model.streamsStep(b)) { // low precision: Java arrays from the layers to the logits
                return model.streamedStepLogits(x, positions, m, cache);
            }
            return lastRowLogits(model.forward(x, positions, m, cache), b, 1);
        }
    }

    @Override
    public void reorder(int[] rows) {
        cache.reorder(rows);
        int[][] m = new int[rows.length][];
        int[] c = new int[rows.length];
        for (int i = 0; i < rows.length; i++) {
            m[i] = mask[rows[i]].clone();
            c[i] = realCount[rows[i]];
        }
        mask = m;
        realCount = c;
        trimCommonPadding();
    }

    @Override
    public void merge(DecoderSession other) {
        OptSession o = (OptSession) other;
        if (o.model != model) {
            throw new IllegalArgumentException("sessions of different models cannot merge");
        }
        int s = Math.max(mask[0].length, o.mask[0].length);
        padLeft(s);
        o.padLeft(s);
        cache.appendRows(o.cache);
        int[][] m = Arrays.copyOf(mask, mask.length + o.mask.length);
        System.arraycopy(o.mask, 0, m, mask.length, o.mask.length);
        int[] c = Arrays.copyOf(realCount, realCount.length + o.realCount.length);
        System.arraycopy(o.realCount, 0, c, realCount.length, o.realCount.length);
        mask = m;
        realCount = c;
        o.manager.close();
    }

    /** Left-pads the history of every row to s positions, masked. */
    private void padLeft(int s) {
        int past = mask[0].length;
        if (past == s) {
            return;
        }
        cache.padLeft(s);
        for (int i = 0; i < mask.length; i++) {
            int[] padded = new int[s];
            System.arraycopy(mask[i], 0, padded, s - past, past);
            mask[i] = padded;
        }
    }

    /**
     * Drops the leading positions that every row masks, so that a batch that rows keep joining and leaving does
     * not drag the padding of rows long gone.
     */
    private void trimCommonPadding() {
        int lead = mask[0].length - 1; // the newest position is never padding
        for (int[] row : mask) {
            int z = 0;
            while (z < lead && row[z] == 0) {
                z++;
            }
            lead = Math.min(lead, z);
        }
        if (lead > 0) {
            cache.trimLeft(lead);
            for (int i = 0; i < mask.length; i++) {
                mask[i] = Arrays.copyOfRange(mask[i], lead, mask[i].length);
            }
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        cache.close();
        manager.close();
    }
}
