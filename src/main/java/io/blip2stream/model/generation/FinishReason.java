package io.blip2stream.model.generation;

/** Why a row stopped generating. */
public enum FinishReason {
    /** the model produced its end-of-sequence token */
    EOS,
    /** max_new_tokens was reached */
    LENGTH,
    /** the caller asked to stop */
    CANCELLED,
    /** the request's deadline passed (set by the service, which stops the row as it stops a cancelled one) */
    TIMEOUT;

    public String wireName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
