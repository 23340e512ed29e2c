package io.blip2stream.engine;

/**
 * A request that cannot be served, with a stable machine-readable code (the DLT header {@code blip2-error-code},
 * the WebSocket error frame's {@code code}) and a message for people.
 */
public class RequestError extends RuntimeException {
    public static final String INVALID_JSON = "invalid_json";
    public static final String INVALID_REQUEST = "invalid_request";
    public static final String UNKNOWN_TASK = "unknown_task";
    public static final String MISSING_IMAGE = "missing_image";
    public static final String INVALID_IMAGE = "invalid_image";
    public static final String IMAGE_TOO_LARGE = "image_too_large";
    /** An image by reference whose URL the rules refuse (scheme, host, address, redirect, file root). */
    public static final String IMAGE_URL_NOT_ALLOWED = "image_url_not_allowed";
    /** An image by reference that could not be fetched (no such host or file, an error status, a broken connection). */
    public static final String IMAGE_FETCH_FAILED = "image_fetch_failed";
    /** An image by reference that did not arrive within images.fetch_timeout_ms. */
    public static final String IMAGE_FETCH_TIMEOUT = "image_fetch_timeout";
    public static final String RECORD_TOO_LARGE = "record_too_large";
    public static final String MISSING_QUESTION = "missing_question";
    public static final String MISSING_TEXTS = "missing_texts";
    public static final String TOO_MANY_TEXTS = "too_many_texts";
    public static final String INVALID_PARAMS = "invalid_params";
    public static final String PROMPT_TOO_LONG = "prompt_too_long";
    public static final String UNSUPPORTED_TASK = "unsupported_task";
    public static final String TIMEOUT = "timeout";
    /** an explicit id that belongs to another live request, or to a finished one with different content */
    public static final String DUPLICATE_ID = "duplicate_id";
    /** a Kafka record whose processing ended in its node's death {@code kafka.poison_after_crashes} times */
    public static final String POISON_SUSPECTED = "poison_suspected";
    public static final String INTERNAL = "internal_error";

    private final String code;
    /** the id of the request refused, once it is known (a refusal before that has none) */
    private String requestId;

    public RequestError(String code, String message) {
        super(message);
        this.code = code;
    }

    public RequestError(String code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public String code() {
        return code;
    }

    /** The id of the request this refuses, or null when it was refused before its id was known. */
    public String requestId() {
        return requestId;
    }

    /** Names the request this refuses (the first name sticks). */
    public RequestError forRequest(String id) {
        if (requestId == null) {
            requestId = id;
        }
        return this;
    }
}
