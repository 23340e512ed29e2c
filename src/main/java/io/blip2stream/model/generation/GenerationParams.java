package io.blip2stream.model.generation;

/**
 * What {@code generate} is asked to do, with transformers' meaning for each field.
 *
 * @param maxNewTokens      the most tokens generated per row
 * @param minNewTokens      EOS is forbidden before this many new tokens
 * @param numBeams          1 for greedy or sampling; more for beam search
 * @param doSample          sample instead of taking the most likely token
 * @param temperature       divides the logits before sampling
 * @param topK              keep the k most likely tokens when sampling (0 keeps all)
 * @param topP              nucleus sampling: keep the smallest set whose probability reaches p (1 keeps all)
 * @param repetitionPenalty CTRL's penalty on tokens already in the sequence, prompt included (1 is none)
 * @param lengthPenalty     beam search: a finished beam's score is its log-probability over length^lengthPenalty
 * @param earlyStopping     beam search: stop when {@code numBeams} beams have finished ({@code TRUE}), by
 *                          transformers' heuristic ({@code FALSE}), or only when no beam can improve
 *                          ({@code NEVER})
 * @param seed              the sampler's seed; null draws one
 */
public record GenerationParams(
        int maxNewTokens,
        int minNewTokens,
        int numBeams,
        boolean doSample,
        double temperature,
        int topK,
        double topP,
        double repetitionPenalty,
        double lengthPenalty,
        EarlyStopping earlyStopping,
        Long seed) {

    /** transformers' {@code early_stopping}: True, False or "never". */
    public enum EarlyStopping { TRUE, FALSE, NEVER }

    public static final int MAX_NEW_TOKENS_LIMIT = 4096;
    /** The range of temperature and repetition_penalty: scores divided or multiplied by them stay finite in float32. */
    public static final double MIN_SCALE = 1e-4;
    public static final double MAX_SCALE = 1e4;
    /** A beam's score is divided by its length to this power: beyond it, the power overflows a double. */
    public static final double MAX_LENGTH_PENALTY = 100;

    public GenerationParams {
        check(maxNewTokens >= 1 && maxNewTokens <= MAX_NEW_TOKENS_LIMIT,
                "max_new_tokens must be between 1 and " + MAX_NEW_TOKENS_LIMIT + ", got " + maxNewTokens);
        check(minNewTokens >= 0 && minNewTokens <= maxNewTokens,
                "min_new_tokens must be between 0 and max_new_tokens (" + maxNewTokens + "), got " + minNewTokens);
        check(numBeams >= 1 && numBeams <= 64, "num_beams must be between 1 and 64, got " + numBeams);
        check(!(doSample && numBeams > 1), "do_sample with num_beams > 1 (beam sampling) is not supported");
        // bounded where float32 scores stay finite: transformers takes any positive temperature, and 1e-300 (0 in float32)
        // turns its scores into inf and NaN, so torch.multinomial fails the whole batch; here it is refused
        check(temperature >= MIN_SCALE && temperature <= MAX_SCALE, "temperature must be between " + MIN_SCALE + " and "
                + MAX_SCALE + " (smaller ones overflow float32 scores; do_sample false picks the most likely token), got " + temperature);
        check(topK >= 0, "top_k must be 0 or more, got " + topK);
        check(topP > 0 && topP <= 1, "top_p must be in (0, 1], got " + topP);
        check(repetitionPenalty >= MIN_SCALE && repetitionPenalty <= MAX_SCALE,
                "repetition_penalty must be between " + MIN_SCALE + " and " + MAX_SCALE + ", got " + repetitionPenalty);
        check(Math.abs(lengthPenalty) <= MAX_LENGTH_PENALTY, "length_penalty must be between -" + MAX_LENGTH_PENALTY + " and "
                + MAX_LENGTH_PENALTY + ", got " + lengthPenalty);
        if (earlyStopping == null) {
            earlyStopping = EarlyStopping.FALSE;
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /** Greedy decoding of up to {@code maxNewTokens} tokens, transformers' defaults otherwise. */
    public static GenerationParams greedy(int maxNewTokens) {
        return builder().maxNewTokens(maxNewTokens).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.maxNewTokens = maxNewTokens;
        b.minNewTokens = minNewTokens;
        b.numBeams = numBeams;
        b.doSample = doSample;
        b.temperature = temperature;
        b.topK = topK;
        b.topP = topP;
        b.repetitionPenalty = repetitionPenalty;
        b.lengthPenalty = lengthPenalty;
        b.earlyStopping = earlyStopping;
        b.seed = seed;
        return b;
    }

    /** Defaults are transformers' GenerationConfig ones, except max_new_tokens (30 here, for captions). */
    public static final class Builder {
        private int maxNewTokens = 30;
        private int minNewTokens = 0;
        private int numBeams = 1;
        private boolean doSample = false;
        private double temperature = 1.0;
        private int topK = 50;
        private double topP = 1.0;
        private double repetitionPenalty = 1.0;
        private double lengthPenalty = 1.0;
        private EarlyStopping earlyStopping = EarlyStopping.FALSE;
        private Long seed;

        public Builder maxNewTokens(int v) { maxNewTokens = v; return this; }
        public Builder minNewTokens(int v) { minNewTokens = v; return this; }
        public Builder numBeams(int v) { numBeams = v; return this; }
        public Builder doSample(boolean v) { doSample = v; return this; }
        public Builder temperature(double v) { temperature = v; return this; }
        public Builder topK(int v) { topK = v; return this; }
        public Builder topP(double v) { topP = v; return this; }
        public Builder repetitionPenalty(double v) { repetitionPenalty = v; return this; }
        public Builder lengthPenalty(double v) { lengthPenalty = v; return this; }
        public Builder earlyStopping(EarlyStopping v) { earlyStopping = v; return this; }
        public Builder seed(Long v) { seed = v; return this; }

        public GenerationParams build() {
            return new GenerationParams(maxNewTokens, minNewTokens, numBeams, doSample, temperature, topK, topP,
                    repetitionPenalty, lengthPenalty, earlyStopping, seed);
        }
    }
}
