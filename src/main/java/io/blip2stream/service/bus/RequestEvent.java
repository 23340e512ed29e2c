package io.blip2stream.service.bus;

import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Locale;

/**
 * A change in a request's life, published on the event bus by whoever knows it: taken (queued), in a batch
 * (running), answered (done, with the result JSON) or not (failed, with the error code and message).
 *
 * @param source kafka, websocket or http
 * @param owner  who submitted it over HTTP or WebSocket (a token's fingerprint), when tokens are configured;
 *               null for Kafka requests and on an open service
 */
public record RequestEvent(String id, Status status, String task, String source, ObjectNode result, String errorCode,
                           String errorMessage, String owner) {

    public enum Status {
        QUEUED, RUNNING, DONE, FAILED;

        public String wireName() {
            return name().toLowerCase(Locale.ROOT);
        }

        public boolean finished() {
            return this == DONE || this == FAILED;
        }
    }

    public static RequestEvent queued(String id, String task, String source) {
        return queued(id, task, source, null);
    }

    public static RequestEvent queued(String id, String task, String source, String owner) {
        return new RequestEvent(id, Status.QUEUED, task, source, null, null, null, owner);
    }

    public static RequestEvent running(String id) {
        return new RequestEvent(id, Status.RUNNING, null, null, null, null, null, null);
    }

    public static RequestEvent done(String id, ObjectNode result) {
        return new RequestEvent(id, Status.DONE, null, null, result, null, null, null);
    }

    public static RequestEvent failed(String id, String code, String message) {
        return new RequestEvent(id, Status.FAILED, null, null, null, code, message, null);
    }
}
