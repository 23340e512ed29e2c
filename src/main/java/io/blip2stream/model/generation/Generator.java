package io.blip2stream.model.generation;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Greedy decoding and sampling with transformers' semantics, over a batch of rows. A row that finishes leaves
 * the batch (its KV cache rows are dropped), so the others decode at the cost of the rows still running.
 * Beam search is {@link BeamSearch}.
 */
public final class Generator {
    private Generator() {}

    /**
     * @param session    a session whose prompt has been run, one row per prompt
     * @param promptIds  per row, the ids transformers' logits processors see as the prompt
     * @param eosTokenId the end-of-sequence token, or -1 for none
     */
    public static List<Generated> generate(DecoderSession session, int[][] promptIds, GenerationParams p,
                                           int eosTokenId, TokenListener listener) {
        if (p.numBeams() > 1) {
            return BeamSearch.generate(session, promptIds, p, eosTokenId, listener);
        }
        int rows = session.rows();
        int[][] seq = new int[rows][];
        int[] len = new int[rows];
        SplittableRandom[] rngs = new SplittableRandom[rows];
        long seed = p.seed() != null ? p.seed() : new SplittableRandom().nextLong();
        for (int r = 0; r < rows; r++) {
            seq[r] = Arrays.copyOf(promptIds[r], promptIds[r].length + p.maxNewTokens());
            len[r] = promptIds[r].length;
            rngs[r] = new SplittableRandom(seed); // each row its own stream: a batch samples as one at a time
        }
        Generated[] out = new Generated[rows];
        int[] active = new int[rows]; // session row i is original row active[i]
        for (int r = 0; r < rows; r++) {
            active[r] = r;
        }
        float[][] logits = session.promptLogits();
        for (int step = 0; ; step++) {
            int[] next = new int[active.length];
            List<Integer> keep = new ArrayList<>();
            for (int i = 0; i < active.length; i++) {
                int r = active[i];
                if (listener.isCancelled(r)) {
                    out[r] = finish(seq[r], promptIds[r].length, len[r], FinishReason.CANCELLED);
                    continue;
                }
                float[] scores = logits[i].clone();
                LogitsProcessor.process(scores, seq[r], len[r], step, p, eosTokenId);
                int token;
                if (p.doSample()) {
                    LogitsProcessor.warp(scores, p);
                    token = sample(LogitsProcessor.softmax(scores), rngs[r]);
                } else {
                    token = LogitsProcessor.argmax(scores);
                }
                seq[r][len[r]++] = token;
                listener.onToken(r, step, token);
                if (token == eosTokenId) {
                    out[r] = finish(seq[r], promptIds[r].length, len[r], FinishReason.EOS);
                } else if (step + 1 >= p.maxNewTokens()) {
                    out[r] = finish(seq[r], promptIds[r].length, len[r], FinishReason.LENGTH);
                } else {
                    next[i] = token;
                    keep.add(i);
                }
            }
            if (keep.isEmpty()) {
                break;
            }
            if (keep.size() < active.length) {
                int[] rowsKept = keep.stream().mapToInt(Integer::intValue).toArray();
                session.reorder(rowsKept);
                int[] a = new int[rowsKept.length];
                int[] n = new int[rowsKept.length];
                for (int j = 0; j < rowsKept.length; j++) {
                    a[j] = active[rowsKept[j]];
                    n[j] = next[rowsKept[j]];
                }
                active = a;
                next = n;
            }
            logits = session.step(next);
        }
        return Arrays.asList(out);
    }

    private static Generated finish(int[] seq, int promptLen, int len, FinishReason reason) {
        return new Generated(Arrays.copyOfRange(seq, promptLen, len), reason);
    }

    /** Inverse-CDF draw from {@code probs}. */
    static int sample(float[] probs, SplittableRandom rng) {
        double u = rng.nextDouble();
        double cum = 0;
        int last = -1;
        for (int i = 0; i < probs.length; i++) {
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
}
