package io.blip2stream.engine;

/** Where a job's generated tokens go and who says whether to stop it: what the runner and each job's row ({@link JobRow}) report to. */
public interface TokenSink {
    TokenSink NONE = (job, index, tokenId, text) -> { };

    /** A new token of {@code job}: its index among the job's new tokens, its id, and the new piece of text. */
    void onToken(InferenceJob job, int index, int tokenId, String text);

    /** True stops the job's generation at the next step (finish_reason cancelled). */
    default boolean isCancelled(InferenceJob job) {
        return false;
    }
}
