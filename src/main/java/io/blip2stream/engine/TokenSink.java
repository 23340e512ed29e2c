package io.blip2stream.engine;

/** Where the runner reports generated tokens of jobs that asked to stream, and asks whether a job was cancelled. */
public interface TokenSink {
    TokenSink NONE = (job, index, tokenId, text) -> { };

    /** A new token of {@code job}: its index among the job's new tokens, its id, and the new piece of text. */
    void onToken(InferenceJob job, int index, int tokenId, String text);

    /** True stops the job's generation at the next step (finish_reason cancelled). */
    default boolean isCancelled(InferenceJob job) {
        return false;
    }
}
