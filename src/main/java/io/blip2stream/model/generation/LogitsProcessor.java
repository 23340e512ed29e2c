package io.blip2stream.model.generation;

import java.util.Arrays;

/**
 * transformers' logits processors and warpers, in the order {@code generate} applies them: repetition penalty,
 * min new tokens; then, when sampling, temperature, top-k and top-p. Each works in place on one row of scores.
 */
final class LogitsProcessor {
    private LogitsProcessor() {}

    /**
     * The processors that apply to every strategy.
     *
     * @param sequence  the row's ids so far, prompt (as transformers sees it) then new tokens
     * @param newTokens how many of them are new
     */
    static void process(float[] scores, int[] sequence, int sequenceLength, int newTokens, GenerationParams p, int eosTokenId) {
        if (p.repetitionPenalty() != 1.0) {
            float penalty = (float) p.repetitionPenalty();
            boolean[] seen = new boolean[scores.length];
            for (int i = 0; i < sequenceLength; i++) {
                int id = sequence[i];
                if (id >= 0 && id < scores.length && !seen[id]) {
                    seen[id] = true;
                    float s = scores[id];
                    scores[id] = s < 0 ? s * penalty : s / penalty;
                }
            }
        }
        if (newTokens < p.minNewTokens() && eosTokenId >= 0 && eosTokenId < scores.length) {
            scores[eosTokenId] = Float.NEGATIVE_INFINITY;
        }
    }

    /** Temperature, top-k and top-p, as transformers' warpers (filtered tokens become -inf). */
    static void warp(float[] scores, GenerationParams p) {
        if (p.temperature() != 1.0) {
            float t = (float) p.temperature();
            for (int i = 0; i < scores.length; i++) {
                scores[i] = scores[i] / t;
            }
        }
        if (p.topK() > 0 && p.topK() < scores.length) {
            float[] sorted = scores.clone();
            Arrays.sort(sorted);
            float kth = sorted[sorted.length - p.topK()];
            for (int i = 0; i < scores.length; i++) {
                if (scores[i] < kth) {
                    scores[i] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        if (p.topP() < 1.0) {
            topP(scores, p.topP());
        }
    }

    /**
     * Sorts ascending, removes the tokens whose cumulative probability stays at or below {@code 1 - topP}, and
     * always keeps the most likely one.
     */
    private static void topP(float[] scores, double topP) {
        Integer[] order = new Integer[scores.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Float.compare(scores[a], scores[b]));
        float[] probs = softmax(scores);
        float cum = 0;
        for (int r = 0; r < order.length - 1; r++) {
            cum += probs[order[r]];
            if (cum <= 1 - topP) {
                scores[order[r]] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    static float[] softmax(float[] scores) {
        float max = Float.NEGATIVE_INFINITY;
        for (float s : scores) {
            max = Math.max(max, s);
        }
        float[] out = new float[scores.length];
        double sum = 0;
        for (int i = 0; i < scores.length; i++) {
            float e = scores[i] == Float.NEGATIVE_INFINITY ? 0f : (float) Math.exp(scores[i] - max);
            out[i] = e;
            sum += e;
        }
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) (out[i] / sum);
        }
        return out;
    }

    /** log_softmax in float32 arithmetic over a double-accumulated normaliser. */
    static float[] logSoftmax(float[] logits) {
        float max = Float.NEGATIVE_INFINITY;
        for (float s : logits) {
            max = Math.max(max, s);
        }
        double sum = 0;
        for (float s : logits) {
            sum += Math.exp(s - max);
        }
        float lse = (float) Math.log(sum);
        float[] out = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = logits[i] - max - lse;
        }
        return out;
    }

    /** The first index of the largest score (torch.argmax). */
    static int argmax(float[] scores) {
        int best = 0;
        for (int i = 1; i < scores.length; i++) {
            if (scores[i] > scores[best]) {
                best = i;
            }
        }
        return best;
    }
}
