package io.blip2stream.model.generation;

/**
 * What one row of generation tells whoever asked for it, on the thread that decodes: each new token with the
 * piece of text it completes, whether to stop, and how the row ended. It is the one callback from the model to a
 * client: the engine closes one over each job, and the service's closes over the client's connection.
 *
 * <p>Greedy and sampled tokens arrive one step at a time; beam search knows its tokens only at the end and
 * reports them then, in order. A row ends once: {@link #onFinish} or {@link #onError}.
 */
public interface RowListener {
    RowListener NONE = (index, tokenId, text) -> { };

    /**
     * @param index   the token's index among the row's new tokens (0-based)
     * @param tokenId the token
     * @param text    the new piece of text it completes ("" while a character is incomplete, or where the
     *                generation runs without a tokenizer)
     */
    void onToken(int index, int tokenId, String text);

    /** Asked before each of the row's tokens: true ends the row with finish_reason cancelled. */
    default boolean isCancelled() {
        return false;
    }

    /** The row is done (it has left its batch). */
    default void onFinish(GenerationResult result) {}

    /**
     * The row ended without a result: it failed alone (a {@link RowFailure}, or this listener's own exception), or
     * the model failed for every row.
     */
    default void onError(RuntimeException cause) {}
}
