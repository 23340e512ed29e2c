package io.blip2stream.model.generation;

import io.blip2stream.model.text.IncrementalDecoder;
import io.blip2stream.model.text.TextTokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Iteration-level (continuous) batching of greedy decoding and sampling, as vLLM and TensorRT-LLM do it: rows
 * join the running batch between two decode steps, each with its own generation parameters, and leave the
 * moment they finish, so a short request that starts later can finish first, and a new row's first token never
 * waits for the rows already running.
 *
 * <p>A joining row's prompt has been run in a session of its own (the prefill, batched among the rows that join
 * together); its first token is picked from that session's prompt logits, and the session is then merged into
 * the running one ({@link DecoderSession#merge}): from there on every row advances by one token per
 * {@link #step()}. Each row's tokens are those it would get alone (same logits processors, its own random
 * stream). Beam search keeps its beams in lockstep and runs as a group of its own ({@link BeamSearch}).
 *
 * <p>Not thread-safe: one decoding thread drives a batch. The batch owns the sessions given to it.
 */
public final class ContinuousBatch implements AutoCloseable {

    private static final class Row {
        final GenerationParams params;
        final int[] seq;       // the ids the logits processors see: prompt view, then new tokens
        final int promptLength;
        final SplittableRandom rng;
        final RowListener listener;
        final IncrementalDecoder text; // null: no tokenizer, no text
        final long prefillNanos;
        final long joinedNanos;
        int length;
        int step;              // new tokens so far
        int next;              // the token the next decode step feeds

        Row(int[] promptIds, GenerationParams params, RowListener listener, TextTokenizer tokenizer, long prefillNanos) {
            this.params = params;
            this.text = tokenizer == null ? null : new IncrementalDecoder(tokenizer);
            this.prefillNanos = prefillNanos;
            this.joinedNanos = System.nanoTime();
            this.seq = Arrays.copyOf(promptIds, promptIds.length + params.maxNewTokens());
            this.promptLength = promptIds.length;
            this.length = promptIds.length;
            long seed = params.seed() != null ? params.seed() : new SplittableRandom().nextLong();
            this.rng = new SplittableRandom(seed); // each row its own stream: a batch samples as one at a time
            this.listener = listener;
        }
    }

    private final int eosTokenId;
    private final TextTokenizer tokenizer;
    private final List<Row> rows = new ArrayList<>(); // row i of the session is rows.get(i)
    private DecoderSession session;                    // null while no row runs

    /** A batch that reports token ids only (no text): @param eosTokenId the end-of-sequence token, or -1 for none */
    public ContinuousBatch(int eosTokenId) {
        this(eosTokenId, null);
    }

    /**
     * @param eosTokenId the end-of-sequence token, or -1 for none
     * @param tokenizer  decodes each row's text as its tokens come, or null for none
     */
    public ContinuousBatch(int eosTokenId, TextTokenizer tokenizer) {
        this.eosTokenId = eosTokenId;
        this.tokenizer = tokenizer;
    }

    /** The rows decoding now. */
    public int size() {
        return rows.size();
    }

    public boolean isEmpty() {
        return rows.isEmpty();
    }

    /**
     * Rows join: {@code joining} is a session whose prompts have just run, one row per entry of the lists. Each
     * row's first token is picked now and reported; rows that finish with it leave at once, the others join the
     * running batch. The batch takes ownership of {@code joining}.
     *
     * @param promptIds    per row, the ids the logits processors see as the prompt
     * @param prefillNanos how long the joining rows' prompts took (reported in each row's result)
     */
    public void add(DecoderSession joining, int[][] promptIds, List<GenerationParams> params, List<RowListener> listeners,
                    long prefillNanos) {
        int n = joining.rows();
        if (promptIds.length != n || params.size() != n || listeners.size() != n) {
            joining.close();
            throw new IllegalArgumentException("a session of " + n + " rows needs as many prompts, parameters and listeners");
        }
        for (GenerationParams p : params) {
            if (p.numBeams() > 1) {
                joining.close();
                throw new IllegalArgumentException("beam search runs as a group of its own, not in a continuous batch");
            }
        }
        float[][] logits = joining.promptLogits();
        List<Row> joined = new ArrayList<>(n);
        int[] kept = new int[n];
        int k = 0;
        for (int i = 0; i < n; i++) {
            Row r = new Row(promptIds[i], params.get(i), listeners.get(i), tokenizer, prefillNanos);
            if (advance(r, logits[i])) {
                joined.add(r);
                kept[k++] = i;
            }
        }
        if (joined.isEmpty()) {
            joining.close();
            return;
        }
        if (k < n) {
            joining.reorder(Arrays.copyOf(kept, k));
        }
        if (session == null) {
            session = joining;
        } else {
            session.merge(joining);
        }
        rows.addAll(joined);
    }

    /** One decode step for every row: each gets its next token, and the rows that finish leave. */
    public void step() {
        if (rows.isEmpty()) {
            return;
        }
        int[] tokens = new int[rows.size()];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = rows.get(i).next;
        }
        float[][] logits = session.step(tokens);
        int[] kept = new int[rows.size()];
        int k = 0;
        for (int i = 0; i < rows.size(); i++) {
            if (advance(rows.get(i), logits[i])) {
                kept[k++] = i;
            }
        }
        retain(Arrays.copyOf(kept, k));
    }

    /**
     * Ends every row without a result, after a failure of the model: each row's listener hears of {@code cause},
     * the rows leave, and the session is closed.
     */
    public void abort(RuntimeException cause) {
        List<Row> lost = new ArrayList<>(rows);
        rows.clear();
        closeSession();
        for (Row r : lost) {
            r.listener.onError(cause);
        }
    }

    private void retain(int[] kept) {
        if (kept.length == rows.size()) {
            return;
        }
        if (kept.length == 0) {
            rows.clear();
            closeSession();
            return;
        }
        session.reorder(kept);
        List<Row> left = new ArrayList<>(kept.length);
        for (int i : kept) {
            left.add(rows.get(i));
        }
        rows.clear();
        rows.addAll(left);
    }

    /**
     * Picks the row's next token from its logits; false when the row is done (reported and left). A failure of the
     * row (scores that are not numbers, nothing left to pick, its listener failing) ends the row alone, reported to
     * its listener; the caller's other rows are untouched.
     */
    private boolean advance(Row r, float[] logits) {
        int token;
        try {
            if (r.listener.isCancelled()) {
                finish(r, FinishReason.CANCELLED);
                return false;
            }
            token = pick(r, logits);
            r.seq[r.length++] = token;
            r.listener.onToken(r.step, token, r.text == null ? "" : r.text.add(token));
        } catch (RuntimeException e) {
            fail(r, e);
            return false;
        }
        r.step++;
        if (token == eosTokenId) {
            return finishSafely(r, FinishReason.EOS);
        }
        if (r.step >= r.params.maxNewTokens()) {
            return finishSafely(r, FinishReason.LENGTH);
        }
        r.next = token;
        return true;
    }

    /** The row's next token under its processors, warpers and strategy; a {@link RowFailure} if there is none. */
    private int pick(Row r, float[] logits) {
        for (float x : logits) {
            if (Float.isNaN(x)) {
                throw new RowFailure("the model's scores for this request are not numbers (NaN) at new token " + r.step);
            }
        }
        float[] scores = logits.clone();
        LogitsProcessor.process(scores, r.seq, r.length, r.step, r.params, eosTokenId);
        if (!r.params.doSample()) {
            int token = LogitsProcessor.argmax(scores);
            if (scores[token] == Float.NEGATIVE_INFINITY) {
                throw new RowFailure("no token is left to pick at new token " + r.step + " (every score is -inf after the logits processors)");
            }
            return token;
        }
        LogitsProcessor.warp(scores, r.params);
        float[] probs = LogitsProcessor.softmax(scores);
        int token = sample(probs, r.rng);
        if (token < 0) {
            throw new RowFailure("sampling found no token with a probability at new token " + r.step
                    + " (the scores after temperature, top_k and top_p are not finite, or all -inf)");
        }
        return token;
    }

    private boolean finishSafely(Row r, FinishReason reason) {
        try {
            finish(r, reason);
        } catch (RuntimeException e) {
            r.listener.onError(e);
        }
        return false;
    }

    /** Ends a row that failed: its listener hears why (a listener that fails again is not asked twice). */
    private static void fail(Row r, RuntimeException e) {
        try {
            r.listener.onError(e);
        } catch (RuntimeException ignored) {
            // the listener's own failure: nothing more to tell it
        }
    }

    private static void finish(Row r, FinishReason reason) {
        String text = "";
        if (r.text != null) {
            r.text.flush();
            text = r.text.text();
        }
        r.listener.onFinish(new GenerationResult(text, Arrays.copyOfRange(r.seq, r.promptLength, r.length), reason,
                r.prefillNanos, System.nanoTime() - r.joinedNanos));
    }

    /** Inverse-CDF draw from {@code probs}; -1 when no probability is a positive number (NaN, or all zero). */
    static int sample(float[] probs, SplittableRandom rng) {
        double u = rng.nextDouble();
        double cum = 0;
        int last = -1;
        for (int i = 0; i < probs.length; i++) {
            if (Float.isNaN(probs[i])) {
                return -1;
            }
            if (probs[i] > 0) {
                cum += probs[i];
                last = i;
                if (u < cum) {
                    return i;
                }
            }
        }
        return last;
    }

    private void closeSession() {
        if (session != null) {
            session.close();
            session = null;
        }
    }

    /** Closes the session of the rows still running (they get no result). */
    @Override
    public void close() {
        rows.clear();
        closeSession();
    }
}
