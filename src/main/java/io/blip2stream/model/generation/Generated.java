package io.blip2stream.model.generation;

/**
 * The new tokens of one row: no prompt ids, no decoder start token; the EOS if one was generated.
 */
public record Generated(int[] tokenIds, FinishReason finishReason) {}
