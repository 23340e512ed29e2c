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
import java.util.concurrent.CompletableFuture;
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
    /** arrival order; guarded by itself (the socket's handler appends, {@link #next} takes out) */
    private final List<Frame> frames = new ArrayList<>();
    public final CompletableFuture<Short> closed = new CompletableFuture<>();

    private WsClient(WebSocketClient client, WebSocket ws) {
        this.client = client;
        this.ws = ws;
        ws.textMessageHandler(t -> {
            try {
                Frame f = new Frame(JSON.readTree(t), System.nanoTime());
                synchronized (frames) {
                    frames.add(f);
                    frames.notifyAll();
                }
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

    /**
     * The next frame matching, within the timeout. Frames not asked for stay where they are: the matching one is
     * taken out of the arrival-ordered list, under the same lock the socket's handler appends with, so a frame that
     * arrives meanwhile can never overtake an earlier one.
     */
    public Frame next(Predicate<Frame> match, long timeoutMs) throws InterruptedException {
        long end = System.currentTimeMillis() + timeoutMs;
        synchronized (frames) {
            int scanned = 0;
            while (true) {
                for (int i = scanned; i < frames.size(); i++) {
                    if (match.test(frames.get(i))) {
                        return frames.remove(i);
                    }
                }
                scanned = frames.size();
                long left = end - System.currentTimeMillis();
                if (left <= 0) {
                    return null;
                }
                frames.wait(left);
            }
        }
    }

    /** The frames received and not taken yet, in arrival order. */
    public List<Frame> pending() {
        synchronized (frames) {
            return new ArrayList<>(frames);
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
