package io.blip2stream.service.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.Cancellation;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.engine.Task;
import io.blip2stream.service.bus.TokenEvent;
import io.blip2stream.service.lifecycle.RequestTracker;
import io.blip2stream.service.protocol.ClientText;
import io.blip2stream.service.protocol.JsonInput;
import io.blip2stream.service.protocol.RequestDecoder;
import io.blip2stream.service.protocol.ResultJson;
import io.vertx.core.http.ServerWebSocket;

import java.util.HashMap;
import java.util.Map;
import java.util.UUID;

/**
 * One WebSocket on {@code /v1/stream}, JSON text frames.
 * <ul>
 *   <li>in: {@code generate} (caption or vqa), {@code follow} (any request, by id), {@code cancel} (this socket's
 *       own requests);</li>
 *   <li>out: {@code accepted}, {@code token} (one per generated token, with the new piece of text), {@code done}
 *       (the result), {@code error} (with a code).</li>
 * </ul>
 * Closing the socket cancels its own requests; it never cancels what it only follows. A client that leaves more
 * than {@code http.write_queue_max_bytes} unread is closed (1013) rather than buffered without bound.
 */
final class StreamSocket {
    private final HttpVerticle http;
    private final ServerWebSocket ws;
    /** this socket's own requests in flight, each with its cancellation (the job's, once it is validated) */
    private final Map<String, Cancellation> own = new HashMap<>();
    /** every request this socket hears about, own or followed */
    private final Map<String, RequestTracker.Listener> following = new HashMap<>();
    private boolean closed;
    /** who this socket is (a token's fingerprint), or null on an open service */
    private final String principal;

    StreamSocket(HttpVerticle http, ServerWebSocket ws, String principal) {
        this.http = http;
        this.ws = ws;
        this.principal = principal;
    }

    void start() {
        ws.setWriteQueueMaxSize(http.config.http().writeQueueMaxBytes());
        ws.textMessageHandler(this::onText);
        ws.binaryMessageHandler(b -> error(null, RequestError.INVALID_REQUEST, "send JSON text frames"));
        ws.exceptionHandler(this::onError);
        ws.closeHandler(v -> onClose());
    }

    /**
     * Vert.x drops a message over the size limit, and Netty a frame over its limit (then it reads nothing more from
     * the socket), and tells us here: say so, and close with 1009 (1002 for another protocol violation).
     */
    private void onError(Throwable e) {
        String m = String.valueOf(e.getMessage());
        if (e instanceof IllegalStateException && m.contains("max message size")) {
            error(null, "message_too_large", "a message may have at most " + http.config.http().maxMessageBytes() + " bytes");
            ws.close((short) 1009, "message too big");
            onClose();
        } else if (e instanceof io.netty.handler.codec.http.websocketx.CorruptedWebSocketFrameException c) {
            boolean tooBig = c.closeStatus() != null && c.closeStatus().code() == 1009;
            if (tooBig) {
                error(null, "message_too_large", "a frame may have at most " + http.config.http().maxFrameBytes() + " bytes");
            }
            ws.close((short) (tooBig ? 1009 : 1002), tooBig ? "frame too big" : "protocol error");
            onClose();
        } else {
            HttpVerticle.log().debug("WebSocket error: {}", e.toString());
        }
    }

    private void onText(String text) {
        JsonNode msg;
        try {
            msg = JsonInput.read(text, "the frame", RequestError.INVALID_JSON);
        } catch (RequestError e) {
            error(null, e.code(), e.getMessage());
            return;
        }
        if (msg == null || !msg.isObject()) {
            error(null, RequestError.INVALID_JSON, "a frame is a JSON object");
            return;
        }
        String type = msg.path("type").asText("");
        String id = msg.hasNonNull("id") ? msg.get("id").asText() : null;
        switch (type) {
            case "generate" -> generate(msg, id);
            case "follow" -> {
                if (id == null) {
                    error(null, RequestError.INVALID_REQUEST, "follow needs an id");
                } else {
                    follow(id, true);
                }
            }
            case "cancel" -> cancel(id);
            default -> error(id, RequestError.INVALID_REQUEST, "unknown frame type '" + type + "' (generate, follow or cancel)");
        }
    }

    private void generate(JsonNode msg, String givenId) {
        String id = givenId == null || givenId.isBlank() ? UUID.randomUUID().toString() : givenId;
        Task task = Task.parse(msg.path("task").asText(null));
        if (task == null || !task.generates()) {
            error(id, RequestError.UNKNOWN_TASK, "task must be caption or vqa");
            return;
        }
        if (own.containsKey(id) || following.containsKey(id)) {
            error(id, RequestError.DUPLICATE_ID, "a request with id " + ClientText.quote(id) + " exists already on this connection");
            return;
        }
        if (own.size() >= http.config.http().maxRequestsPerConnection()) {
            error(id, "too_many_requests", "this connection has " + own.size() + " requests in flight; the limit is "
                    + http.config.http().maxRequestsPerConnection());
            return;
        }
        if (!http.tryReserve()) {
            http.metrics.request(task.wireName(), "overloaded");
            error(id, "overloaded", "the service is at capacity; try again shortly");
            return;
        }
        own.put(id, new Cancellation()); // a cancel before the job exists is kept here
        long accepted = System.nanoTime();
        http.reader.job(() -> {
            RequestDecoder.Fields f = http.decoder.fromJson(msg, id);
            return new RequestDecoder.Fields(id, task.wireName(), f.image(), f.prompt(), f.question(), null, f.params(), false,
                    f.deadlineMs(), f.imageUrl());
        }, accepted).onComplete(ar -> {
            if (ar.failed()) {
                own.remove(id);
                http.release();
                RequestError e = ar.cause() instanceof RequestError re ? re
                        : new RequestError(RequestError.INTERNAL, ar.cause().toString());
                http.rejected(null, task.wireName(), "websocket", e);
                error(id, e.code(), e.getMessage());
                return;
            }
            if (closed) {
                own.remove(id);
                http.release();
                return;
            }
            InferenceJob job = ar.result();
            http.claim(job, "websocket", principal).onComplete(c -> {
                if (c.failed() || c.result().stored() != null) {
                    own.remove(id);
                    http.release();
                    if (c.failed()) {
                        RequestError e = (RequestError) c.cause();
                        error(id, e.code(), e.getMessage());
                    } else {
                        replay(id, c.result().stored());
                    }
                    return;
                }
                if (own.get(id).isCancelled() || closed) {
                    // cancelled (or the socket closed) while its id was claimed: it runs to its first step and ends
                    // cancelled, so that its claim ends as a finished request rather than holding the id
                    job.cancellation().cancel();
                }
                if (!closed) {
                    own.put(id, job.cancellation());
                    send(ResultJson.JSON.createObjectNode().put("type", "accepted").put("id", id));
                    follow(id, false);
                }
                http.submit(job, c.result().claim()).onComplete(done -> own.remove(id));
            });
        });
    }

    /** The same request sent again (same id, content and owner) after it finished: its stored answer. */
    private void replay(String id, JsonNode stored) {
        send(ResultJson.JSON.createObjectNode().put("type", "accepted").put("id", id));
        JsonNode result = stored.get("result");
        if (result != null && result.isObject()) {
            ObjectNode d = ResultJson.JSON.createObjectNode().put("type", "done");
            d.setAll((ObjectNode) result);
            send(d);
        } else {
            error(id, stored.path("error").path("code").asText(RequestError.INTERNAL), stored.path("error").path("message").asText(""));
        }
    }

    /** Follows a request: its tokens so far, then the rest, then done or error. */
    private void follow(String id, boolean waitForUnknown) {
        if (following.containsKey(id)) {
            return;
        }
        if (!Access.mayFollow(principal, http.tracker.owner(id))) {
            error(id, "forbidden", "the request belongs to another client");
            return;
        }
        RequestTracker.Listener l = new RequestTracker.Listener() {
            /** a request not known yet when followed: its owner is checked when it shows up */
            private boolean foreign() {
                if (Access.mayFollow(principal, http.tracker.owner(id))) {
                    return false;
                }
                if (following.remove(id) != null) {
                    http.tracker.unfollow(id, this);
                    error(id, "forbidden", "the request belongs to another client");
                }
                return true;
            }

            @Override
            public void token(TokenEvent t) {
                if (foreign()) {
                    return;
                }
                send(ResultJson.JSON.createObjectNode().put("type", "token").put("id", t.id()).put("index", t.index())
                        .put("token_id", t.tokenId()).put("text", t.text()));
            }

            @Override
            public void done(ObjectNode result) {
                if (foreign()) {
                    return;
                }
                following.remove(id);
                ObjectNode d = ResultJson.JSON.createObjectNode().put("type", "done");
                d.setAll(result);
                send(d);
            }

            @Override
            public void failed(String code, String message) {
                if (foreign()) {
                    return;
                }
                following.remove(id);
                error(id, code, message);
            }
        };
        following.put(id, l);
        boolean open = http.tracker.follow(id, l);
        if (open && waitForUnknown && !http.tracker.known(id)) {
            // it may still be on its way through Kafka: wait a while for it
            http.vertx().setTimer(http.config.http().followTimeoutMs(), t -> {
                if (following.get(id) == l && !http.tracker.known(id)) {
                    following.remove(id);
                    http.tracker.unfollow(id, l);
                    error(id, "not_found", "no request " + id + " was seen within " + http.config.http().followTimeoutMs() + " ms");
                }
            });
        }
    }

    private void cancel(String id) {
        if (id == null) {
            error(null, RequestError.INVALID_REQUEST, "cancel needs an id");
        } else if (!own.containsKey(id)) {
            error(id, "not_cancellable", "only this connection's own requests in flight can be cancelled");
        } else {
            own.get(id).cancel(); // the worker stops it at its next token; the done frame says "cancelled"
        }
    }

    private void onClose() {
        if (closed) {
            return;
        }
        closed = true;
        http.socketClosed(principal);
        own.values().forEach(Cancellation::cancel);
        following.forEach((id, l) -> http.tracker.unfollow(id, l));
        following.clear();
    }

    private void error(String id, String code, String message) {
        ObjectNode e = ResultJson.JSON.createObjectNode().put("type", "error");
        if (id != null) {
            e.put("id", id);
        }
        e.put("code", code).put("message", message == null ? code : message);
        send(e);
    }

    private void send(ObjectNode frame) {
        if (closed) {
            return;
        }
        if (ws.writeQueueFull()) {
            HttpVerticle.log().info("closing a WebSocket that does not read ({} bytes unread)", http.config.http().writeQueueMaxBytes());
            http.metrics.request("websocket", "slow_client_closed");
            ws.close((short) 1013, "client too slow");
            onClose();
            return;
        }
        ws.writeTextMessage(frame.toString());
    }
}
