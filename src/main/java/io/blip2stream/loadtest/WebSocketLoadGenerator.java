package io.blip2stream.loadtest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.common.Millis;
import org.HdrHistogram.Histogram;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * WebSocket clients against {@code /v1/stream}, each sending generate frames one after another (a closed loop
 * per client), timing what a person watching would see: the time to the first token frame, the gaps between
 * token frames, and the time to done. Beside them, the server's own timings from the done frames (prefill, and
 * decode per token), so the cost of the way to the client shows.
 */
public final class WebSocketLoadGenerator {
    private static final ObjectMapper JSON = new ObjectMapper();

    public record Report(int requests, int done, int errors, double seconds, double throughput,
                         double firstTokenP50, double firstTokenP99, double gapP50, double gapP99, double doneP50, double doneP99,
                         double serverPrefillP50, double serverPerTokenP50) {}

    private WebSocketLoadGenerator() {}

    /**
     * @param frame the generate frame to send (its id is replaced per request)
     * @param token a bearer token, or null
     */
    public static Report run(URI uri, String token, int clients, int requests, ObjectNode frame, long timeoutMs) throws Exception {
        Histogram first = new Histogram(TimeUnit.MINUTES.toMicros(30), 3);
        Histogram gaps = new Histogram(TimeUnit.MINUTES.toMicros(30), 3);
        Histogram done = new Histogram(TimeUnit.MINUTES.toMicros(30), 3);
        Histogram prefill = new Histogram(TimeUnit.MINUTES.toMicros(30), 3);
        Histogram perToken = new Histogram(TimeUnit.MINUTES.toMicros(30), 3);
        AtomicInteger next = new AtomicInteger();
        AtomicInteger ok = new AtomicInteger();
        AtomicInteger errors = new AtomicInteger();
        HttpClient http = HttpClient.newHttpClient();
        long start = System.nanoTime();
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            CompletableFuture<Void> finished = new CompletableFuture<>();
            all.add(finished);
            WebSocket.Builder b = http.newWebSocketBuilder();
            if (token != null) {
                b.header("Authorization", "Bearer " + token);
            }
            b.buildAsync(uri, new WebSocket.Listener() {
                final StringBuilder partial = new StringBuilder();
                long sent;
                long last;
                boolean firstSeen;

                @Override
                public void onOpen(WebSocket ws) {
                    ws.request(1);
                    sendNext(ws);
                }

                void sendNext(WebSocket ws) {
                    int i = next.getAndIncrement();
                    if (i >= requests) {
                        ws.sendClose(WebSocket.NORMAL_CLOSURE, "done");
                        finished.complete(null);
                        return;
                    }
                    ObjectNode f = frame.deepCopy();
                    f.put("id", "wsload-" + UUID.randomUUID());
                    firstSeen = false;
                    sent = System.nanoTime();
                    ws.sendText(f.toString(), true);
                }

                @Override
                public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean lastPart) {
                    partial.append(data);
                    if (lastPart) {
                        long now = System.nanoTime();
                        try {
                            JsonNode f = JSON.readTree(partial.toString());
                            switch (f.path("type").asText()) {
                                case "token" -> {
                                    synchronized (first) {
                                        if (!firstSeen) {
                                            first.recordValue(Math.max(1, (now - sent) / 1000));
                                            firstSeen = true;
                                        } else {
                                            gaps.recordValue(Math.max(1, (now - last) / 1000));
                                        }
                                    }
                                    last = now;
                                }
                                case "done" -> {
                                    JsonNode t = f.get("timings");
                                    int n = f.path("token_ids").size();
                                    synchronized (first) {
                                        done.recordValue(Math.max(1, (now - sent) / 1000));
                                        prefill.recordValue(Math.max(1, (long) (t.get("prefill_ms").asDouble() * 1000)));
                                        if (n > 1) {
                                            perToken.recordValue(Math.max(1, (long) (t.get("decode_ms").asDouble() * 1000 / n)));
                                        }
                                    }
                                    ok.incrementAndGet();
                                    sendNext(ws);
                                }
                                case "error" -> {
                                    errors.incrementAndGet();
                                    sendNext(ws);
                                }
                                default -> { }
                            }
                        } catch (Exception e) {
                            finished.completeExceptionally(e);
                        }
                        partial.setLength(0);
                    }
                    ws.request(1);
                    return null;
                }

                @Override
                public void onError(WebSocket ws, Throwable error) {
                    finished.completeExceptionally(error);
                }
            });
        }
        CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(timeoutMs, TimeUnit.MILLISECONDS);
        double seconds = (System.nanoTime() - start) / 1e9;
        synchronized (first) {
            return new Report(requests, ok.get(), errors.get(), seconds, ok.get() / seconds,
                    Millis.ofMicros(first.getValueAtPercentile(50)), Millis.ofMicros(first.getValueAtPercentile(99)),
                    Millis.ofMicros(gaps.getValueAtPercentile(50)), Millis.ofMicros(gaps.getValueAtPercentile(99)),
                    Millis.ofMicros(done.getValueAtPercentile(50)), Millis.ofMicros(done.getValueAtPercentile(99)),
                    Millis.ofMicros(prefill.getValueAtPercentile(50)), Millis.ofMicros(perToken.getValueAtPercentile(50)));
        }
    }

}
