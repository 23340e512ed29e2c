package io.blip2stream.engine;

/**
 * Whether a request's owner gave up on it: set by whoever took the request in (a closed connection, a cancel
 * frame, a client that does not read), read by the worker before each of its tokens. It belongs to the one request
 * and dies with it, so no other request, earlier or later, with the same id or not, is ever stopped by it.
 */
public final class Cancellation {
    private volatile boolean cancelled;

    public void cancel() {
        cancelled = true;
    }

    public boolean isCancelled() {
        return cancelled;
    }
}
