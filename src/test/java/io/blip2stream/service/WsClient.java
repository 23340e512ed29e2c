package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vertx.core.Vertx;
import io.vertx.core.http.WebSocket;
import io.vertx.core.http.WebSocketClient;
import io.vertx.core.http.WebSocketClientOptions;
import io.vertx.core.http.WebSocketConnectOptions;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** A real WebSocket client for the tests: frames arrive in a queue, each with the time it arrived. */
public final class WsClient implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();

    /** A frame and its arrival time (System.nanoTime). */
    public record Frame(JsonNode json, long at) {
        public String type() {
            return json.path("type").asText();
        }

        public String id() {
            return json.path("id").asText(null);
        }
    }

    public final WebSocket ws;
    private final WebSocketClient client;
    public final BlockingQueue<Frame> frames = new LinkedBlockingQueue<>();
    public final CompletableFuture<Short> closed = new CompletableFuture<>();

    private WsClient(WebSocketClient client, WebSocket ws) {
        this.client = client;
        this.ws = ws;
        ws.textMessageHandler(t -> {
            try {
                frames.add(new Frame(JSON.readTree(t), System.nanoTime()));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        ws.closeHandler(v -> closed.complete(ws.closeStatusCode()));
    }

    public static WsClient connect(Vertx vertx, int port, String uri, WebSocketClientOptions opts, String origin,
                                   String authorization) throws Exception {
        WebSocketClient c = vertx.createWebSocketClient(opts == null ? new WebSocketClientOptions().setMaxMessageSize(64 << 20) : opts);
        WebSocketConnectOptions o = new WebSocketConnectOptions().setHost("127.0.0.1").setPort(port).setURI(uri);
        if (origin != null) {
            o.putHeader("Origin", origin);
        }
        if (authorization != null) {
            o.putHeader("Authorization", authorization);
        }
        WebSocket ws = c.connect(o).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        return new WsClient(c, ws);
    }

    public void send(Object frame) throws Exception {
        ws.writeTextMessage(JSON.writeValueAsString(frame)).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    /** The next frame matching, within the timeout (others are kept in order). */
    public Frame next(Predicate<Frame> match, long timeoutMs) throws InterruptedException {
        long end = System.currentTimeMillis() + timeoutMs;
        List<Frame> skipped = new ArrayList<>();
        try {
            while (true) {
                long left = end - System.currentTimeMillis();
                if (left <= 0) {
                    return null;
                }
                Frame f = frames.poll(left, TimeUnit.MILLISECONDS);
                if (f == null) {
                    return null;
                }
                if (match.test(f)) {
                    return f;
                }
                skipped.add(f);
            }
        } finally {
            // put back what was not asked for, in front, in order
            List<Frame> rest = new ArrayList<>();
            frames.drainTo(rest);
            frames.addAll(skipped);
            frames.addAll(rest);
        }
    }

    /** All frames of {@code id} up to and including its done or error frame. */
    public List<Frame> until(String id, long timeoutMs) throws InterruptedException {
        List<Frame> out = new ArrayList<>();
        long end = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < end) {
            Frame f = next(x -> id.equals(x.id()), end - System.currentTimeMillis());
            if (f == null) {
                break;
            }
            out.add(f);
            if (f.type().equals("done") || f.type().equals("error")) {
                break;
            }
        }
        return out;
    }

    @Override
    public void close() {
        ws.close();
        client.close();
    }
}
