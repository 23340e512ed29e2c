package io.blip2stream.engine;

import io.blip2stream.model.generation.GenerationParams;

import java.util.List;

/**
 * One validated request on its way to a model.
 *
 * @param id          the request id: every output carries it
 * @param image       encoded image bytes (null for an embed of texts alone)
 * @param prompt      caption: text the caption continues (null: none)
 * @param question    vqa: the question, put into the family's template by the runner
 * @param texts       match and embed: the texts
 * @param params      caption and vqa: generation parameters
 * @param stream      report each token as it is generated
 * @param acceptedNanos when the service took the request (System.nanoTime), for queued_ms and total_ms
 * @param deadlineNanos the System.nanoTime after which no work starts for it and its generation stops
 *                      (finish_reason timeout); {@link #NO_DEADLINE} for none
 */
public record InferenceJob(String id, Task task, byte[] image, String prompt, String question, List<String> texts,
                           GenerationParams params, boolean stream, long acceptedNanos, long deadlineNanos) {
    public static final long NO_DEADLINE = Long.MAX_VALUE;

    /** A job without a deadline. */
    public InferenceJob(String id, Task task, byte[] image, String prompt, String question, List<String> texts,
                        GenerationParams params, boolean stream, long acceptedNanos) {
        this(id, task, image, prompt, question, texts, params, stream, acceptedNanos, NO_DEADLINE);
    }

    /** The deadline {@code deadlineMs} after acceptance; 0 or less: none. */
    public static long deadline(long acceptedNanos, long deadlineMs) {
        return deadlineMs <= 0 ? NO_DEADLINE : acceptedNanos + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(deadlineMs);
    }

    /** True once {@code nowNanos} (System.nanoTime) is past the deadline. */
    public boolean pastDeadline(long nowNanos) {
        return deadlineNanos != NO_DEADLINE && nowNanos - deadlineNanos > 0;
    }
}
