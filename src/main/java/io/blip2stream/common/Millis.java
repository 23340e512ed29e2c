package io.blip2stream.common;

/** Durations as the service reports them: milliseconds to two decimals. */
public final class Millis {
    private Millis() {}

    /** {@code nanos} in milliseconds, rounded to 0.01. */
    public static double ofNanos(long nanos) {
        return Math.round(nanos / 1e4) / 100.0;
    }

    /** {@code micros} in milliseconds, rounded to 0.01. */
    public static double ofMicros(long micros) {
        return Math.round(micros / 10.0) / 100.0;
    }
}
