package io.blip2stream.train;

/**
 * The learning rate per step, as in BLIP-2: a linear warm-up from {@code warmupStart} to {@code peak} over
 * {@code warmup} steps, then a cosine decay to {@code min} at the last step.
 */
record Schedule(int steps, int warmup, float warmupStart, float peak, float min) {

    float at(int step) {
        if (step < warmup) {
            return warmupStart + (peak - warmupStart) * step / Math.max(1, warmup);
        }
        double progress = (double) (step - warmup) / Math.max(1, steps - warmup);
        return (float) (min + (peak - min) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
    }
}
