package io.blip2stream.model.generation;

/**
 * One row's generation: its new tokens (no prompt ids, no decoder start token; the EOS if one was generated), their
 * text without special tokens, why it stopped, and how long its prefill and its decoding took.
 */
public record GenerationResult(String text, int[] tokenIds, FinishReason finishReason, long prefillNanos, long decodeNanos) {}
