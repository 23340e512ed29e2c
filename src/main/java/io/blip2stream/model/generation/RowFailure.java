package io.blip2stream.model.generation;

/**
 * One row of a batch could not go on: its scores were not numbers, no token was left to pick after its logits
 * processors, or whoever listens to it failed. It ends that row alone; the other rows decode on as if it had never
 * been there. The message speaks of the request, never of weights or classes.
 */
public final class RowFailure extends RuntimeException {
    public RowFailure(String message) {
        super(message);
    }

    public RowFailure(String message, Throwable cause) {
        super(message, cause);
    }
}
