package io.blip2stream.model.llm.t5;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.nn.Ops;

import java.util.Arrays;

/**
 * The per-request state of T5 decoding: the encoder's keys and values for cross-attention (computed once), the
 * decoder's self-attention KV cache and the encoder mask. Every row's decoder starts from the decoder start
 * token, so decoder rows are never padded.
 */
final class T5Session implements DecoderSession {
    private final T5ForConditionalGeneration model;
    private final NDManager manager;
    private final KvCache self;
    private final KvCache cross;
    private int[][] encoderMask; // (B, L)
    private NDArray crossMask;   // (B, 1, 1, L) additive
    private int past;
    private float[][] promptLogits;

    T5Session(T5ForConditionalGeneration model, NDManager manager, float[] inputsEmbeds, int[][] attentionMask) {
        this(model, manager, inputsEmbeds, attentionMask, true);
    }

    T5Session(T5ForConditionalGeneration model, NDManager manager, float[] inputsEmbeds, int[][] attentionMask, boolean firstStep) {
        this.model = model;
        this.manager = manager;
        int layers = model.config().numDecoderLayers();
        this.self = new KvCache(manager, layers);
        this.cross = new KvCache(manager, layers);
        this.encoderMask = new int[attentionMask.length][];
        for (int i = 0; i < attentionMask.length; i++) {
            encoderMask[i] = attentionMask[i].clone();
        }
        int b = attentionMask.length;
        int l = attentionMask[0].length;
        this.crossMask = maskArray(encoderMask);
        try (NDManager scope = manager.newSubManager()) {
            NDArray x = Ops.create(scope, inputsEmbeds, b, l, model.inputWidth()); // (B, L, D)
            NDArray encoded = model.encode(x, crossMask);                         // (B, L, D)
            model.crossKeysValues(encoded, cross);
        }
        if (firstStep) {
            int[] start = new int[b];
            Arrays.fill(start, model.config().decoderStartTokenId());
            this.promptLogits = step(start);
        }
    }

    private NDArray maskArray(int[][] mask) {
        int b = mask.length;
        int l = mask[0].length;
        float[] m = new float[b * l];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < l; j++) {
                m[i * l + j] = mask[i][j] == 1 ? 0f : -Float.MAX_VALUE;
            }
        }
        return Ops.create(manager, m, b, 1, 1, l);
    }

    @Override
    public int rows() {
        return encoderMask.length;
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
        int b = rows();
        if (tokens.length != b) {
            throw new IllegalArgumentException("expected " + b + " tokens, got " + tokens.length);
        }
        float[][] out = new float[b][];
        float[][] all = decode(tokens, 1);
        for (int i = 0; i < b; i++) {
            out[i] = all[i];
        }
        return out;
    }

    /** Decodes the whole decoder sequence of one row in one pass: logits at every position, [T][V]. */
    float[][] decodeAll(int[] ids) {
        return decode(ids, ids.length);
    }

    /** Feeds t tokens per row (ids row-major, [B * t]); returns logits [B * t][V]. */
    private float[][] decode(int[] ids, int t) {
        int b = ids.length / t;
        int d = model.inputWidth();
        float[] emb = new float[ids.length * d];
        for (int i = 0; i < ids.length; i++) {
            model.embedToken(ids[i], emb, i * d);
        }
        try (NDManager scope = manager.newSubManager()) {
            NDArray x = Ops.create(scope, emb, b, t, d);                               // (B, T, D)
            float[] flat = model.decode(x, past, self, cross, crossMask).toFloatArray(); // (B, T, V)
            past += t;
            int v = vocabSize();
            float[][] out = new float[b * t][];
            for (int i = 0; i < b * t; i++) {
                out[i] = Arrays.copyOfRange(flat, i * v, (i + 1) * v);
            }
            return out;
        }
    }

    @Override
    public void reorder(int[] rows) {
        self.reorder(rows);
        cross.reorder(rows);
        int[][] m = new int[rows.length][];
        for (int i = 0; i < rows.length; i++) {
            m[i] = encoderMask[rows[i]];
        }
        encoderMask = m;
        crossMask.close();
        crossMask = maskArray(encoderMask);
    }

    @Override
    public void close() {
        self.close();
        cross.close();
        manager.close();
    }
}
