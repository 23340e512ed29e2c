package io.blip2stream.engine;

import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.Blip2Retrieval;
import io.blip2stream.model.generation.FinishReason;

import java.util.List;

/**
 * What a job produced. Generation tasks fill {@code text}, {@code tokenIds} and {@code finishReason}; match fills
 * {@code matches}; embed fills {@code imageEmbeds} ([Q][P]) and/or {@code textEmbeds} ([texts][P]).
 * Timings are milliseconds.
 */
public record InferenceResult(InferenceJob job, String model, String text, int[] tokenIds, FinishReason finishReason,
                              List<Blip2Retrieval.MatchResult> matches, float[][] imageEmbeds, float[][] textEmbeds,
                              Timings timings) {

    /** Where the time went, in milliseconds. */
    /** @param visualPromptCached the image's visual prompt came from the cache (no vision encoder, no Q-Former) */
    public record Timings(double queuedMs, double preprocessMs, double visionMs, double qformerMs, double prefillMs,
                          double decodeMs, double totalMs, boolean visualPromptCached) {}
}
