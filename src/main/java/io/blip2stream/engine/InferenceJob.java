package io.blip2stream.engine;

import io.blip2stream.common.Sha256;
import io.blip2stream.model.generation.GenerationParams;

import java.util.List;

/**
 * One validated request on its way to a model, its texts tokenized already ({@link RequestTexts}), so that the
 * worker that runs it never tokenizes.
 *
 * @param id            the request id: every output carries it
 * @param image         encoded image bytes (null for an embed of texts alone)
 * @param prompt        caption: text the caption continues (null: none)
 * @param question      vqa: the question
 * @param texts         match and embed: the texts
 * @param promptIds     caption and vqa: the ids the language model reads after the visual prompt (the question in
 *                      the family's template); null for match and embed
 * @param textIds       match and embed: each text's ids; null for caption and vqa
 * @param params        caption and vqa: generation parameters
 * @param stream        report each token as it is generated
 * @param acceptedNanos when the service took the request (System.nanoTime), for queued_ms and total_ms
 * @param deadlineNanos the System.nanoTime after which no work starts for it and its generation stops
 *                      (finish_reason timeout); {@link #NO_DEADLINE} for none
 * @param cancellation  this request's own cancellation (its generation stops at its next token once set)
 * @param imageDigest   the image's SHA-256 (hex), or null without an image: the visual-prompt cache's key
 * @param contentDigest a fingerprint of what the request asks ({@link #digest}): the same request sent again under
 *                      the same id is recognised by it
 */
public record InferenceJob(String id, Task task, byte[] image, String prompt, String question, List<String> texts,
                           int[] promptIds, List<int[]> textIds, GenerationParams params, boolean stream, long acceptedNanos,
                           long deadlineNanos, Cancellation cancellation, String imageDigest, String contentDigest) {
    public static final long NO_DEADLINE = Long.MAX_VALUE;

    /**
     * The digests are computed here, once, on the thread that builds the job (the decoder's worker thread): hashing
     * an image of megabytes takes milliseconds, which neither an event loop nor the decode loop should pay.
     */
    public InferenceJob {
        if (task.generates() && promptIds == null) {
            throw new IllegalArgumentException("a " + task.wireName() + " job carries its prompt's ids (RequestTexts)");
        }
        if (cancellation == null) {
            cancellation = new Cancellation();
        }
        if (imageDigest == null && image != null) {
            imageDigest = Sha256.hex(image);
        }
        if (contentDigest == null) {
            contentDigest = digest(task, imageDigest, prompt, question, texts, params);
        }
    }

    /** A job with its texts' ids ({@link RequestTexts#encode}) and a cancellation of its own. */
    public static InferenceJob of(String id, Task task, byte[] image, String prompt, String question, List<String> texts,
                                  RequestTexts.Encoded encoded, GenerationParams params, boolean stream, long acceptedNanos,
                                  long deadlineNanos) {
        return new InferenceJob(id, task, image, prompt, question, texts, encoded.promptIds(), encoded.textIds(), params, stream,
                acceptedNanos, deadlineNanos, new Cancellation(), null, null);
    }

    /** The deadline {@code deadlineMs} after acceptance; 0 or less: none. */
    public static long deadline(long acceptedNanos, long deadlineMs) {
        return deadlineMs <= 0 ? NO_DEADLINE : acceptedNanos + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(deadlineMs);
    }

    /** True once {@code nowNanos} (System.nanoTime) is past the deadline. */
    public boolean pastDeadline(long nowNanos) {
        return deadlineNanos != NO_DEADLINE && nowNanos - deadlineNanos > 0;
    }

    /**
     * A fingerprint of what a request asks (task, image, texts, parameters; not its id, deadline or streaming):
     * SHA-256 of the parts, each length-prefixed, the image by its own digest.
     */
    static String digest(Task task, String imageDigest, String prompt, String question, List<String> texts, GenerationParams params) {
        List<String> fields = new java.util.ArrayList<>(List.of(task.wireName()));
        fields.addAll(java.util.Arrays.asList(imageDigest, prompt, question, texts == null ? null : String.valueOf(texts.size())));
        if (texts != null) {
            fields.addAll(texts);
        }
        fields.add(params == null ? null : params.toString());
        return Sha256.ofFields(fields.toArray(new String[0]));
    }

    /** Whether its owner cancelled it. */
    public boolean cancelled() {
        return cancellation.isCancelled();
    }
}
