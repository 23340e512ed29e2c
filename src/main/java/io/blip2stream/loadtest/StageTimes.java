package io.blip2stream.loadtest;

import org.HdrHistogram.Histogram;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Medians of a result's server-side stages (its {@code timings}: queued, preprocess, vision, qformer, prefill,
 * decode, total), so that a raw run and a run through Kafka can be compared stage by stage. Thread-safe.
 */
final class StageTimes {
    static final String[] STAGES = {"queued", "preprocess", "vision", "qformer", "prefill", "decode", "total"};

    private final Map<String, Histogram> histograms = new LinkedHashMap<>();

    StageTimes() {
        for (String s : STAGES) {
            histograms.put(s, new Histogram(TimeUnit.MINUTES.toMicros(30), 3));
        }
    }

    /** @param ms one result's stage times in milliseconds, in the order of {@link #STAGES} */
    synchronized void record(double... ms) {
        for (int i = 0; i < STAGES.length && i < ms.length; i++) {
            histograms.get(STAGES[i]).recordValue(Math.max(1, (long) (ms[i] * 1000)));
        }
    }

    /** Each stage's median in milliseconds (stages never recorded are left out). */
    synchronized Map<String, Double> medians() {
        Map<String, Double> out = new LinkedHashMap<>();
        histograms.forEach((s, h) -> {
            if (h.getTotalCount() > 0) {
                out.put(s, h.getValueAtPercentile(50) / 1000.0);
            }
        });
        return out;
    }
}
