package io.blip2stream.service;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.model.Fixtures;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Overload (issue 9, item 5): 16 HTTP clients sending back to back, 4x the configured capacity of 4 requests at
 * once, for 8 seconds, with WebSocket clients asking too: what is over capacity gets 429 with Retry-After (p99 within
 * 100 ms) or an {@code overloaded} error frame, everything accepted completes with its tokens, and the work in the
 * service never exceeds its capacity (the in-flight and queue gauges of /metrics, sampled throughout).
 */
@Tag("broker")
class OverloadTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static double gauge(String metrics, String name) {
        double v = 0;
        for (String line : metrics.split("\n")) {
            if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
                v += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return v;
    }

    @Test
    void fourTimesCapacityIsRefusedAtOnceAndWhatIsAcceptedCompletes() throws Exception {
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of(
                "http.max_in_flight", "4",
                "inference.step_delay_ms", "20"))) {
            int port = h.service.httpPort();
            String png = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));
            String body = "{\"image\":\"" + png + "\",\"params\":{\"max_new_tokens\":8,\"min_new_tokens\":8}}";
            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
            List<Double> refusedMs = new CopyOnWriteArrayList<>();
            AtomicInteger accepted = new AtomicInteger();
            AtomicInteger wrong = new AtomicInteger();
            List<String> problems = new CopyOnWriteArrayList<>();
            AtomicLong maxInFlight = new AtomicLong();
            long warm = System.currentTimeMillis() + 1_500; // the first requests meet a cold JIT: not counted in the latencies
            long end = System.currentTimeMillis() + 9_500;
            ExecutorService pool = Executors.newFixedThreadPool(17);
            List<Future<?>> clients = new ArrayList<>();
            for (int c = 0; c < 16; c++) {
                clients.add(pool.submit(() -> {
                    while (System.currentTimeMillis() < end) {
                        long t0 = System.nanoTime();
                        HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/caption"))
                                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                                HttpResponse.BodyHandlers.ofString());
                        double ms = (System.nanoTime() - t0) / 1e6;
                        if (r.statusCode() == 429) {
                            if (System.currentTimeMillis() > warm) {
                                refusedMs.add(ms);
                            }
                            if (r.headers().firstValue("Retry-After").isEmpty()) {
                                problems.add("429 without Retry-After");
                            }
                            Thread.sleep(20); // a client backing off a little (Retry-After asks for a second)
                        } else if (r.statusCode() == 200 && JSON.readTree(r.body()).get("token_ids").size() == 8) {
                            accepted.incrementAndGet();
                        } else {
                            wrong.incrementAndGet();
                            problems.add(r.statusCode() + " " + r.body());
                        }
                    }
                    return null;
                }));
            }
            // the gauges, sampled while the load runs
            clients.add(pool.submit(() -> {
                while (System.currentTimeMillis() < end) {
                    String m = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics")).build(),
                            HttpResponse.BodyHandlers.ofString()).body();
                    maxInFlight.accumulateAndGet((long) (gauge(m, "blip2_in_flight") + gauge(m, "blip2_queue_depth")), Math::max);
                    Thread.sleep(50);
                }
                return null;
            }));
            // a WebSocket client asking while the service is full hears "overloaded" (or is served)
            Map<String, String> wsOutcome = new ConcurrentHashMap<>();
            WebSocket ws = client.newWebSocketBuilder().buildAsync(URI.create("ws://127.0.0.1:" + port + "/v1/stream"),
                    new JsonFrameListener(f -> {
                        String type = f.get("type").asText();
                        if (type.equals("error")) {
                            wsOutcome.put(f.path("id").asText(), f.get("code").asText());
                        } else if (type.equals("done")) {
                            wsOutcome.put(f.get("id").asText(), "done");
                        }
                    }, e -> problems.add(e.toString()))).get(10, TimeUnit.SECONDS);
            Thread.sleep(1000);
            for (int i = 0; i < 20; i++) {
                ws.sendText("{\"type\":\"generate\",\"id\":\"ws-" + i + "\",\"task\":\"caption\",\"image\":\"" + png
                        + "\",\"params\":{\"max_new_tokens\":8}}", true).get(5, TimeUnit.SECONDS);
                Thread.sleep(150);
            }
            for (Future<?> f : clients) {
                f.get(60, TimeUnit.SECONDS);
            }
            pool.shutdown();
            long wsEnd = System.currentTimeMillis() + 30_000;
            while (wsOutcome.size() < 20 && System.currentTimeMillis() < wsEnd) {
                Thread.sleep(100);
            }
            ws.sendClose(WebSocket.NORMAL_CLOSURE, "bye");

            List<Double> sorted = new ArrayList<>(refusedMs);
            Collections.sort(sorted);
            double p99 = sorted.isEmpty() ? Double.NaN : sorted.get((int) Math.ceil(0.99 * sorted.size()) - 1);
            long overloadedFrames = wsOutcome.values().stream().filter("overloaded"::equals).count();
            System.out.printf("HTTP: %d accepted and completed, %d refused with 429 (p50 %.1f ms, p99 %.1f ms, max %.1f ms); "
                    + "WebSocket: %s; in flight + queued at most %d%n", accepted.get(), sorted.size(),
                    sorted.isEmpty() ? Double.NaN : sorted.get(sorted.size() / 2), p99,
                    sorted.isEmpty() ? Double.NaN : sorted.get(sorted.size() - 1), wsOutcome, maxInFlight.get());
            assertEquals(List.of(), problems);
            assertEquals(0, wrong.get());
            assertTrue(accepted.get() > 10, accepted + " accepted");
            assertTrue(sorted.size() > 3 * accepted.get(), "most of 4x capacity is refused: " + sorted.size());
            assertTrue(p99 < 100, "429 within 100 ms at p99: " + p99);
            assertEquals(20, wsOutcome.size(), "every WebSocket request was answered: " + wsOutcome);
            assertTrue(wsOutcome.values().stream().allMatch(v -> v.equals("done") || v.equals("overloaded")), wsOutcome.toString());
            assertTrue(overloadedFrames > 0, "the WebSocket heard overloaded: " + wsOutcome);
            assertTrue(maxInFlight.get() <= 4 + 4, "in flight and queued stay bounded: " + maxInFlight.get());
            assertNotNull(h.service);
        }
    }
}
