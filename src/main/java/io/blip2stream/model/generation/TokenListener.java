package io.blip2stream.model.generation;

/**
 * Receives tokens as they are produced. Greedy and sampled tokens arrive one step at a time; beam search
 * knows its tokens only at the end and reports them then, in order.
 */
@FunctionalInterface
public interface TokenListener {
    TokenListener NONE = (row, index, tokenId) -> { };

    /**
     * @param row     the row of the batch
     * @param index   the token's index among the row's new tokens (0-based)
     * @param tokenId the token
     */
    void onToken(int row, int index, int tokenId);

    /** Asked before each step: true stops the row (cancelled by its caller). */
    default boolean isCancelled(int row) {
        return false;
    }
}
