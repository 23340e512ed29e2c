package io.blip2stream.model.llm.t5;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.nn.AttentionMask;
import io.blip2stream.model.nn.Ops;

import java.util.Arrays;

/**
 * The per-request state of T5 decoding: the encoder's keys and values for cross-attention (computed once), the
 * decoder's self-attention KV cache and the encoder mask. Every row's decoder starts from the decoder start
 * token, so decoder rows are never padded.
 */
final class T5Session implements DecoderSession {
    private final T5ForConditionalGeneration model;
    private boolean closed;
    private final NDManager manager;
    private final KvCache self;
    private final KvCache cross;
    private int[][] encoderMask; // (B, L)
    private NDArray crossMask;   // (B, 1, 1, L) additive
    private int[][] decoderMask; // (B, S) 1 real, 0 left padding (rows that joined with a shorter history)
    private boolean decoderPadded;
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
        this.decoderMask = new int[b][0];
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
        return Ops.create(manager, AttentionMask.padding(mask, 0), mask.length, 1, 1, mask[0].length); // (B, 1, 1, L)
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
        for (int i = 0; i < b; i++) {
            int[] m = Arrays.copyOf(decoderMask[i], past + t);
            Arrays.fill(m, past, past + t, 1);
            decoderMask[i] = m;
        }
        try (NDManager scope = manager.newSubManager()) {
            NDArray x = Ops.create(scope, emb, b, t, d);                               // (B, T, D)
            NDArray selfMask = decoderPadded ? Ops.create(scope, AttentionMask.padding(decoderMask, 0), b, 1, 1, past + t) : null; // (B, 1, 1, S)
            float[] flat = model.decode(x, past, self, cross, crossMask, selfMask).toFloatArray(); // (B, T, V)
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
        int[][] dm = new int[rows.length][];
        for (int i = 0; i < rows.length; i++) {
            m[i] = encoderMask[rows[i]];
            dm[i] = decoderMask[rows[i]];
        }
        encoderMask = m;
        decoderMask = dm;
        crossMask.close();
        crossMask = maskArray(encoderMask);
        trimCommonDecoderPadding();
    }

    @Override
    public void merge(DecoderSession other) {
        T5Session o = (T5Session) other;
        if (o.model != model) {
            throw new IllegalArgumentException("sessions of different models cannot merge");
        }
        // decoder histories: left-padded to one length and masked; T5's relative position bias sees the same
        // distances, as padding shifts a row's queries and keys alike
        int s = Math.max(past, o.past);
        padDecoder(s);
        o.padDecoder(s);
        self.appendRows(o.self);
        // encoder outputs: padded to one length and masked in cross-attention
        int l = Math.max(encoderMask[0].length, o.encoderMask[0].length);
        cross.padLeft(l);
        o.cross.padLeft(l);
        cross.appendRows(o.cross);
        encoderMask = concatRows(padRows(encoderMask, l), padRows(o.encoderMask, l));
        decoderMask = concatRows(decoderMask, o.decoderMask);
        decoderPadded |= o.decoderPadded;
        crossMask.close();
        crossMask = maskArray(encoderMask);
        o.crossMask.close();
        o.manager.close();
    }

    private void padDecoder(int s) {
        if (past == s) {
            return;
        }
        self.padLeft(s);
        decoderMask = padRows(decoderMask, s);
        past = s;
        decoderPadded = true;
    }

    private void trimCommonDecoderPadding() {
        if (!decoderPadded) {
            return;
        }
        int lead = past - 1; // the newest position is never padding
        for (int[] row : decoderMask) {
            int z = 0;
            while (z < lead && row[z] == 0) {
                z++;
            }
            lead = Math.min(lead, z);
        }
        if (lead > 0) {
            self.trimLeft(lead);
            for (int i = 0; i < decoderMask.length; i++) {
                decoderMask[i] = Arrays.copyOfRange(decoderMask[i], lead, past);
            }
            past -= lead;
        }
        decoderPadded = false;
        for (int[] row : decoderMask) {
            decoderPadded |= row[0] == 0;
        }
    }

    /** Rows left-padded with zeros to {@code length}. */
    private static int[][] padRows(int[][] rows, int length) {
        int[][] out = new int[rows.length][];
        for (int i = 0; i < rows.length; i++) {
            out[i] = new int[length];
            System.arraycopy(rows[i], 0, out[i], length - rows[i].length, rows[i].length);
        }
        return out;
    }

    private static int[][] concatRows(int[][] a, int[][] b) {
        int[][] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        self.close();
        cross.close();
        manager.close();
    }
}
