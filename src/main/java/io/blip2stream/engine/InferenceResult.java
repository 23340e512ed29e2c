package io.blip2stream.engine;

import io.blip2stream.model.Blip2Retrieval;
import io.blip2stream.model.generation.FinishReason;

import java.util.List;

/**
 * What a job produced, typed by task ({@link Output}), with the model that produced it and where the time went.
 */
public record InferenceResult(InferenceJob job, String model, Output output, Timings timings) {

    /** What a task produced. */
    public sealed interface Output permits Generated, Matched, Embedded {}

    /** Caption and vqa: the text, its token ids and why generation stopped. */
    public record Generated(String text, int[] tokenIds, FinishReason finishReason) implements Output {}

    /** Match: each text's ITM logits and probability and its ITC score, in the order of the texts. */
    public record Matched(List<Blip2Retrieval.MatchResult> matches) implements Output {}

    /**
     * Embed: the image's query embeddings [Q][P] (no rows without an image) and the texts' embeddings [texts][P]
     * (no rows without texts).
     */
    public record Embedded(float[][] imageEmbeds, float[][] textEmbeds) implements Output {}

    /**
     * Where the time went, in milliseconds.
     *
     * @param visualPromptCached the image's visual prompt came from the cache (no vision encoder, no Q-Former)
     */
    public record Timings(double queuedMs, double preprocessMs, double visionMs, double qformerMs, double prefillMs,
                          double decodeMs, double totalMs, boolean visualPromptCached) {}

    /** What a caption or vqa job generated (an error to ask of another task's result). */
    public Generated generated() {
        if (output instanceof Generated g) {
            return g;
        }
        throw new IllegalStateException("a " + job.task().wireName() + " result has no generated text");
    }
}
