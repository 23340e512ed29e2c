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
 */
public record InferenceJob(String id, Task task, byte[] image, String prompt, String question, List<String> texts,
                           GenerationParams params, boolean stream, long acceptedNanos) {}
