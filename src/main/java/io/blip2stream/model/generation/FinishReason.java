package io.blip2stream.model.generation;

/** Why a row stopped generating. */
public enum FinishReason {
    /** the model produced its end-of-sequence token */
    EOS,
    /** max_new_tokens was reached */
    LENGTH,
    /** the caller asked to stop */
    CANCELLED;

    public String wireName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
