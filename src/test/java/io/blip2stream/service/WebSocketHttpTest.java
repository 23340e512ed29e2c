package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.Fixtures;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.WebSocketClientOptions;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import io.vertx.ext.web.multipart.MultipartForm;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The WebSocket and the HTTP API against the running service (fixture model, in-process broker), with a real
 * WebSocket client and a real HTTP client. Generation is slowed to 40 ms a token so that following, cancelling
 * and disconnecting happen mid-generation. Every limit is set low and answered as specified.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WebSocketHttpTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String TOKEN = "s3cret";
    static final String AUTH = "Bearer " + TOKEN;
    static final String URI = "/v1/stream?access_token=" + TOKEN;
    static final String TOKEN2 = "an0ther";
    static final String URI2 = "/v1/stream?access_token=" + TOKEN2;

    @TempDir
    static Path tmp;
    ServiceHarness harness;
    Vertx client;
    WebClient web;
    int port;
    String png;
    JsonNode cliCaption; // the command line's greedy ids for image 0, 12 tokens

    @BeforeAll
    void start() throws Exception {
        harness = new ServiceHarness(tmp.resolve("data"), Map.ofEntries(
                Map.entry("http.auth_tokens", TOKEN + "," + TOKEN2),
                Map.entry("http.max_sockets_per_token", "4"),
                Map.entry("http.allowed_origins", "http://allowed.example"),
                Map.entry("http.max_requests_per_connection", "2"),
                Map.entry("http.max_in_flight", "3"),
                Map.entry("http.max_frame_bytes", "131072"),
                Map.entry("http.max_message_bytes", "262144"),
                Map.entry("http.idle_timeout_s", "5"),
                Map.entry("http.write_queue_max_bytes", "2048"),
                Map.entry("http.send_buffer_bytes", "4096"),
                Map.entry("http.follow_timeout_ms", "3000"),
                Map.entry("inference.step_delay_ms", "40"),
                Map.entry("inference.max_batch_wait_ms", "5")));
        client = Vertx.vertx();
        web = WebClient.create(client);
        port = harness.service.httpPort();
        png = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));
        cliCaption = Fixtures.cases("blip2-opt-tiny").get(0).get("greedy_new_tokens"); // the CLI gives these (CommandLineIT)
    }

    @AfterAll
    void stop() throws Exception {
        web.close();
        client.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        harness.close();
    }

    WsClient ws() throws Exception {
        return WsClient.connect(client, port, URI, null, null, null);
    }

    ObjectNode generate(String id, int maxNewTokens) {
        ObjectNode f = JSON.createObjectNode().put("type", "generate").put("id", id).put("task", "caption").put("image", png);
        f.putObject("params").put("max_new_tokens", maxNewTokens).put("min_new_tokens", maxNewTokens > 12 ? maxNewTokens : 0);
        return f;
    }

    static <T> T await(io.vertx.core.Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    JsonNode status(String id) throws Exception {
        HttpResponse<Buffer> r = await(web.get(port, "127.0.0.1", "/v1/requests/" + id).putHeader("Authorization", AUTH).send());
        return r.statusCode() == 200 ? JSON.readTree(r.bodyAsString()) : null;
    }

    @Test
    void tokensArriveOneFrameAtATimeBeforeDone() throws Exception {
        try (WsClient c = ws()) {
            c.send(generate("ws-1", 12));
            List<WsClient.Frame> frames = c.until("ws-1", 30_000);
            assertEquals("accepted", frames.get(0).type());
            WsClient.Frame done = frames.get(frames.size() - 1);
            assertEquals("done", done.type(), frames.toString());
            List<WsClient.Frame> tokens = frames.subList(1, frames.size() - 1);
            assertEquals(12, tokens.size(), "one frame per token");
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < tokens.size(); i++) {
                assertEquals("token", tokens.get(i).type());
                assertEquals(i, tokens.get(i).json().get("index").asInt());
                assertEquals(cliCaption.get(i).asInt(), tokens.get(i).json().get("token_id").asInt());
                text.append(tokens.get(i).json().get("text").asText());
            }
            assertTrue(done.json().get("text").asText().startsWith(text.toString()), "the pieces make the text");
            assertEquals(cliCaption, done.json().get("token_ids"), "the command line's ids");
            assertEquals("length", done.json().get("finish_reason").asText());
            assertNotNull(done.json().get("timings"));
            // the tokens came spread over the generation, not at once with done
            assertTrue(tokens.get(tokens.size() - 1).at() - tokens.get(0).at() > TimeUnit.MILLISECONDS.toNanos(200),
                    "streamed, not batched at the end");
            assertEquals("done", status("ws-1").get("status").asText());
        }
        assertEquals(List.of(), harness.blockedEventLoops);
    }

    /**
     * One route: what a follower on the event bus hears of a request is its state, every token in order, then its
     * result, never the result before a token (the tracker holds nothing back any more). Heard here as any node
     * hears it, from the service's clustered event bus.
     */
    @Test
    void aRequestsTokensAndResultTravelOneRouteInOrder() throws Exception {
        List<Object> heard = new java.util.concurrent.CopyOnWriteArrayList<>();
        var consumer = harness.service.vertx().eventBus().consumer(io.blip2stream.service.bus.Addresses.REQUEST_EVENTS, m -> {
            Object b = m.body();
            if (b instanceof io.blip2stream.service.bus.TokenEvent t && t.id().equals("one-route")
                    || b instanceof io.blip2stream.service.bus.RequestEvent e && e.id().equals("one-route")) {
                heard.add(b);
            }
        });
        await(consumer.completion());
        List<WsClient.Frame> frames;
        try (WsClient c = ws()) {
            c.send(generate("one-route", 12));
            frames = c.until("one-route", 30_000); // the socket's done may come before the bus's: wait for that too
            long deadline = System.currentTimeMillis() + 10_000;
            while (heard.stream().noneMatch(x -> x instanceof io.blip2stream.service.bus.RequestEvent e && e.status().finished())
                    && System.currentTimeMillis() < deadline) {
                Thread.sleep(10);
            }
        } finally {
            await(consumer.unregister());
        }
        List<String> kinds = new java.util.ArrayList<>();
        int nextIndex = 0;
        for (Object x : heard) {
            if (x instanceof io.blip2stream.service.bus.TokenEvent t) {
                assertEquals(nextIndex++, t.index(), "tokens in order: " + kinds);
                kinds.add("token");
            } else {
                kinds.add(((io.blip2stream.service.bus.RequestEvent) x).status().wireName());
            }
        }
        assertEquals(12, nextIndex, kinds.toString());
        assertEquals("done", kinds.get(kinds.size() - 1), "the result comes last, after every token: " + kinds);
        assertEquals(1, kinds.stream().filter("done"::equals).count(), kinds.toString());
        var done = (io.blip2stream.service.bus.RequestEvent) heard.get(heard.size() - 1);
        assertEquals(cliCaption, done.result().get("token_ids"));
        // one result JSON, built once by the worker: the client's is the bus's, to the timings
        WsClient.Frame socketDone = frames.get(frames.size() - 1);
        done.result().fields().forEachRemaining(f -> assertEquals(f.getValue(), socketDone.json().get(f.getKey()), f.getKey()));
    }

    @Test
    void aShortRequestSentMidGenerationJoinsTheRunningBatchAndFinishesFirst() throws Exception {
        try (WsClient c = ws()) {
            c.send(generate("cb-long", 40)); // 40 steps of at least 40 ms
            assertNotNull(c.next(f -> "cb-long".equals(f.id()) && f.type().equals("token")
                    && f.json().get("index").asInt() == 2, 30_000), "the long request is decoding");
            c.send(generate("cb-short", 3));
            List<WsClient.Frame> shortFrames = c.until("cb-short", 30_000);
            WsClient.Frame shortDone = shortFrames.get(shortFrames.size() - 1);
            assertEquals("done", shortDone.type(), shortFrames.toString());
            List<WsClient.Frame> longFrames = c.until("cb-long", 30_000);
            WsClient.Frame longDone = longFrames.get(longFrames.size() - 1);
            assertEquals("done", longDone.type(), longFrames.toString());
            assertTrue(shortDone.at() < longDone.at(), "the later, shorter request finished first");
            // it did not wait for the long one: its tokens came while the long one still produced tokens
            long longTokensAfterShort = longFrames.stream()
                    .filter(f -> f.type().equals("token") && f.at() > shortDone.at()).count();
            assertTrue(longTokensAfterShort >= 20, "the long request went on after the short one: " + longTokensAfterShort);
            // and joining a running batch changed none of its tokens
            for (int i = 0; i < 3; i++) {
                assertEquals(cliCaption.get(i), shortDone.json().get("token_ids").get(i), "token " + i);
            }
            assertEquals(40, longDone.json().get("token_ids").size());
        }
    }

    @Test
    void aKafkaRequestIsFollowedMidGenerationAndAfterIt() throws Exception {
        String id = "kafka-followed";
        ObjectNode req = JSON.createObjectNode().put("id", id).put("task", "caption").put("image", png);
        req.putObject("params").put("max_new_tokens", 30).put("min_new_tokens", 30);
        harness.send(new ProducerRecord<>(harness.topics().requests(), id, JSON.writeValueAsBytes(req)));
        long end = System.currentTimeMillis() + 30_000;
        JsonNode st = null;
        while (System.currentTimeMillis() < end) {
            st = status(id);
            if (st != null && st.path("tokens_so_far").asInt() >= 3) {
                break;
            }
            Thread.sleep(20);
        }
        assertNotNull(st, "the request is known over HTTP");
        assertEquals("running", st.get("status").asText());
        assertEquals("kafka", st.get("source").asText());
        try (WsClient c = ws()) {
            c.send(Map.of("type", "follow", "id", id));
            List<WsClient.Frame> frames = c.until(id, 30_000);
            WsClient.Frame done = frames.get(frames.size() - 1);
            assertEquals("done", done.type());
            List<WsClient.Frame> tokens = frames.subList(0, frames.size() - 1);
            assertEquals(30, tokens.size(), "the tokens so far, then the rest");
            for (int i = 0; i < tokens.size(); i++) {
                assertEquals(i, tokens.get(i).json().get("index").asInt());
            }
            assertEquals(30, done.json().get("token_ids").size());
            // following a finished request replays its result
            c.send(Map.of("type", "follow", "id", id));
            WsClient.Frame replay = c.next(f -> id.equals(f.id()), 5000);
            assertEquals("done", replay.type());
            assertEquals(done.json().get("token_ids"), replay.json().get("token_ids"));
            // an id nobody sends ends in not_found after the follow timeout
            c.send(Map.of("type", "follow", "id", "never-sent"));
            WsClient.Frame nf = c.next(f -> "never-sent".equals(f.id()), 10_000);
            assertEquals("error", nf.type());
            assertEquals("not_found", nf.json().get("code").asText());
        }
    }

    @Test
    void aWatcherLeavingNeverCancelsAKafkaRequest() throws Exception {
        String id = "kafka-watched";
        ObjectNode req = JSON.createObjectNode().put("id", id).put("task", "caption").put("image", png);
        req.putObject("params").put("max_new_tokens", 20).put("min_new_tokens", 20);
        try (KafkaConsumer<String, byte[]> out = harness.consumer(List.of(harness.topics().captions()))) {
            try (WsClient c = ws()) {
                c.send(Map.of("type", "follow", "id", id));
                harness.send(new ProducerRecord<>(harness.topics().requests(), id, JSON.writeValueAsBytes(req)));
                assertNotNull(c.next(f -> id.equals(f.id()) && f.type().equals("token") && f.json().get("index").asInt() >= 2, 30_000));
            } // the watcher leaves mid-generation
            List<ConsumerRecord<String, byte[]>> got = ServiceHarness.readUntil(out,
                    l -> l.stream().anyMatch(r -> id.equals(r.key())), 30_000);
            JsonNode result = JSON.readTree(got.stream().filter(r -> id.equals(r.key())).findFirst().orElseThrow().value());
            assertEquals("length", result.get("finish_reason").asText());
            assertEquals(20, result.get("token_ids").size());
        }
    }

    @Test
    void cancelAndDisconnectStopGenerationWithinTwoTokens() throws Exception {
        try (WsClient c = ws()) {
            c.send(generate("to-cancel", 110));
            c.next(f -> "to-cancel".equals(f.id()) && f.type().equals("token") && f.json().get("index").asInt() == 2, 30_000);
            int seen = (int) c.pending().stream().filter(f -> f.type().equals("token")).count() + 3;
            c.send(Map.of("type", "cancel", "id", "to-cancel"));
            WsClient.Frame done = c.next(f -> "to-cancel".equals(f.id()) && f.type().equals("done"), 30_000);
            assertNotNull(done);
            assertEquals("cancelled", done.json().get("finish_reason").asText());
            int generated = done.json().get("token_ids").size();
            assertTrue(generated <= seen + 2, "stopped within 2 tokens of the cancel: " + generated + " after " + seen);
        }
        WsClient d = ws();
        d.send(generate("to-drop", 110));
        d.next(f -> "to-drop".equals(f.id()) && f.type().equals("token") && f.json().get("index").asInt() == 2, 30_000);
        int seen = (int) d.pending().stream().filter(f -> f.type().equals("token")).count() + 3;
        d.close(); // the socket goes away: its own request stops
        JsonNode st = null;
        long end = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < end) {
            st = status("to-drop");
            if (st != null && st.get("status").asText().equals("done")) {
                break;
            }
            Thread.sleep(50);
        }
        assertEquals("cancelled", st.get("result").get("finish_reason").asText());
        assertTrue(st.get("result").get("token_ids").size() <= seen + 3, "stopped soon after the disconnect: " + st);
    }

    @Test
    void serverSentEventsAndPlainHttp() throws Exception {
        MultipartForm form = MultipartForm.create()
                .binaryFileUpload("image", "image0.png", Fixtures.dir("blip2-opt-tiny").resolve("image0.png").toString(), "image/png")
                .attribute("params", "{\"max_new_tokens\":12}");
        HttpResponse<Buffer> sse = await(web.post(port, "127.0.0.1", "/v1/caption").putHeader("Authorization", AUTH)
                .putHeader("Accept", "text/event-stream").sendMultipartForm(form));
        assertEquals(200, sse.statusCode());
        assertTrue(sse.getHeader("content-type").startsWith("text/event-stream"));
        List<String> events = new ArrayList<>();
        List<JsonNode> data = new ArrayList<>();
        for (String block : sse.bodyAsString().split("\n\n")) {
            if (block.isBlank()) {
                continue;
            }
            String[] lines = block.split("\n");
            events.add(lines[0].substring("event: ".length()));
            data.add(JSON.readTree(lines[1].substring("data: ".length())));
        }
        assertEquals("accepted", events.get(0));
        assertEquals("done", events.get(events.size() - 1));
        assertEquals(14, events.size(), "accepted, 12 tokens, done: " + events);
        assertEquals(cliCaption, data.get(data.size() - 1).get("token_ids"));

        ObjectNode body = JSON.createObjectNode().put("image", png).put("id", "http-json-1");
        body.putObject("params").put("max_new_tokens", 12);
        HttpResponse<Buffer> plain = await(web.post(port, "127.0.0.1", "/v1/caption").putHeader("Authorization", AUTH)
                .sendJson(new io.vertx.core.json.JsonObject(body.toString())));
        assertEquals(200, plain.statusCode(), plain.bodyAsString());
        JsonNode result = JSON.readTree(plain.bodyAsString());
        assertEquals(cliCaption, result.get("token_ids"));
        JsonNode st = status("http-json-1");
        assertEquals("done", st.get("status").asText());
        assertEquals(cliCaption, st.get("result").get("token_ids"));

        HttpResponse<Buffer> ask = await(web.post(port, "127.0.0.1", "/v1/ask").putHeader("Authorization", AUTH)
                .sendJson(new io.vertx.core.json.JsonObject().put("image", png)));
        assertEquals(400, ask.statusCode());
        assertEquals("missing_question", JSON.readTree(ask.bodyAsString()).get("error").get("code").asText());
        assertEquals(404, await(web.get(port, "127.0.0.1", "/v1/requests/nope").putHeader("Authorization", AUTH).send()).statusCode());
    }

    @Test
    void everyLimitAnswersAsSpecified() throws Exception {
        // bearer tokens: required on HTTP and on the WebSocket
        assertEquals(401, await(web.get(port, "127.0.0.1", "/v1/requests/x").send()).statusCode());
        ExecutionException noToken = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class,
                () -> WsClient.connect(client, port, "/v1/stream", null, null, null));
        assertTrue(noToken.getCause().getMessage().contains("401"), noToken.getCause().getMessage());
        WsClient.connect(client, port, "/v1/stream", null, null, AUTH).close(); // a header works too
        // origins: the listed one and the page's own are allowed, others refused
        ExecutionException evil = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class,
                () -> WsClient.connect(client, port, URI, null, "http://evil.example", null));
        assertTrue(evil.getCause().getMessage().contains("403"), evil.getCause().getMessage());
        WsClient.connect(client, port, URI, null, "http://allowed.example", null).close();
        assertEquals(403, await(web.get(port, "127.0.0.1", "/v1/requests/x").putHeader("Authorization", AUTH)
                .putHeader("Origin", "http://evil.example").send()).statusCode());
        // a message over the size limit closes the socket with 1009
        try (WsClient c = ws()) {
            c.ws.writeTextMessage("{\"type\":\"generate\",\"pad\":\"" + "x".repeat(270_000) + "\"}");
            assertEquals((short) 1009, c.closed.get(10, TimeUnit.SECONDS));
        }
        // an HTTP body over the limit is refused with 413
        assertEquals(413, await(web.post(port, "127.0.0.1", "/v1/caption").putHeader("Authorization", AUTH)
                .sendBuffer(Buffer.buffer("{\"image\":\"" + "A".repeat(300_000) + "\"}"))).statusCode());
        // requests per connection
        try (WsClient c = ws()) {
            c.send(generate("cap-1", 110));
            c.send(generate("cap-2", 110));
            c.send(generate("cap-3", 110));
            WsClient.Frame third = c.next(f -> "cap-3".equals(f.id()), 10_000);
            assertEquals("error", third.type());
            assertEquals("too_many_requests", third.json().get("code").asText());
            // the service at capacity (3): a third request elsewhere is taken, a fourth refused at once
            try (WsClient other = ws()) {
                other.send(generate("cap-4", 110));
                assertEquals("accepted", other.next(f -> "cap-4".equals(f.id()), 10_000).type());
                long t0 = System.nanoTime();
                other.send(generate("cap-5", 110));
                WsClient.Frame over = other.next(f -> "cap-5".equals(f.id()), 10_000);
                assertEquals("overloaded", over.json().get("code").asText());
                long t1 = System.nanoTime();
                HttpResponse<Buffer> busy = await(web.post(port, "127.0.0.1", "/v1/caption").putHeader("Authorization", AUTH)
                        .sendJson(new io.vertx.core.json.JsonObject().put("image", png)));
                long t2 = System.nanoTime();
                assertEquals(429, busy.statusCode());
                assertNotNull(busy.getHeader("Retry-After"));
                assertTrue(TimeUnit.NANOSECONDS.toMillis(t1 - t0) < 1000 && TimeUnit.NANOSECONDS.toMillis(t2 - t1) < 1000, "at once");
                other.send(Map.of("type", "cancel", "id", "cap-4"));
            }
            c.send(Map.of("type", "cancel", "id", "cap-1"));
            c.send(Map.of("type", "cancel", "id", "cap-2"));
            c.next(f -> "cap-2".equals(f.id()) && f.type().equals("done"), 30_000);
            c.send(Map.of("type", "cancel", "id", "someone-else"));
            assertEquals("not_cancellable", c.next(f -> "someone-else".equals(f.id()), 5000).json().get("code").asText());
            c.send(Map.of("type", "dance"));
            assertEquals("invalid_request", c.next(f -> f.type().equals("error") && f.id() == null, 5000).json().get("code").asText());
        }
        // idle connections are closed
        try (WsClient idle = ws()) {
            assertNotNull(idle.closed.get(15, TimeUnit.SECONDS));
        }
        // a client that does not read is closed, not buffered without bound
        WsClient slow = WsClient.connect(client, port, URI, new WebSocketClientOptions().setReceiveBufferSize(2048)
                .setMaxMessageSize(64 << 20), null, null);
        slow.ws.pause();
        String longId = "slow-" + "x".repeat(240); // long ids make big frames: the kernel's buffers fill sooner
        slow.send(generate(longId + "1", 110));
        slow.send(generate(longId + "2", 110));
        long end = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < end && !harness.service.metrics().scrape().contains("outcome=\"slow_client_closed\"")) {
            Thread.sleep(100);
        }
        assertTrue(harness.service.metrics().scrape().contains("outcome=\"slow_client_closed\""), "the slow client was closed");
        slow.ws.resume();
        assertNotNull(slow.closed.get(10, TimeUnit.SECONDS));
        slow.close();
        assertEquals(List.of(), harness.blockedEventLoops);
    }

    /**
     * Tokens: a wrong one gets 401 before the upgrade; each token has at most http.max_sockets_per_token sockets
     * (more are refused with 429 before the upgrade); a request belongs to the token that submitted it: another
     * token can neither follow it (error frame forbidden) nor read it (403), its own can.
     */
    @Test
    void tokensOwnTheirRequestsAndSockets() throws Exception {
        ExecutionException wrong = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class,
                () -> WsClient.connect(client, port, "/v1/stream?access_token=guess", null, null, null));
        assertTrue(wrong.getCause().getMessage().contains("401"), wrong.getCause().getMessage());
        assertEquals(401, await(web.get(port, "127.0.0.1", "/v1/requests/x").putHeader("Authorization", "Bearer guess").send())
                .statusCode());

        List<WsClient> four = new java.util.ArrayList<>();
        try {
            for (int i = 0; i < 4; i++) {
                four.add(WsClient.connect(client, port, URI2, null, null, null));
            }
            ExecutionException fifth = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class,
                    () -> WsClient.connect(client, port, URI2, null, null, null));
            assertTrue(fifth.getCause().getMessage().contains("429"), fifth.getCause().getMessage());
            WsClient.connect(client, port, URI, null, null, null).close(); // another token's sockets are its own

            WsClient theirs = four.get(0);
            try (WsClient mine = ws()) {
                mine.send(generate("owned-1", 40));
                assertEquals("accepted", mine.next(f -> "owned-1".equals(f.id()), 10_000).type());
                theirs.send(Map.of("type", "follow", "id", "owned-1"));
                WsClient.Frame refused = theirs.next(f -> "owned-1".equals(f.id()), 10_000);
                assertEquals("error", refused.type());
                assertEquals("forbidden", refused.json().get("code").asText());
                assertEquals(403, await(web.get(port, "127.0.0.1", "/v1/requests/owned-1")
                        .putHeader("Authorization", "Bearer " + TOKEN2).send()).statusCode());
                // followed before it exists, by the wrong token: refused once it shows up
                theirs.send(Map.of("type", "follow", "id", "owned-2"));
                mine.send(generate("owned-2", 12));
                assertEquals("forbidden", theirs.next(f -> "owned-2".equals(f.id()), 10_000).json().get("code").asText());
                assertEquals("done", mine.next(f -> "owned-2".equals(f.id()) && f.type().equals("done"), 30_000).type());
                mine.next(f -> "owned-1".equals(f.id()) && f.type().equals("done"), 30_000);
                assertEquals(200, await(web.get(port, "127.0.0.1", "/v1/requests/owned-1").putHeader("Authorization", AUTH).send())
                        .statusCode());
                assertTrue(theirs.next(f -> "owned-2".equals(f.id()) || "owned-1".equals(f.id()), 500) == null,
                        "nothing of the other token's requests reached this socket");
            }
            four.remove(0).close();
            long end = System.currentTimeMillis() + 10_000;
            WsClient again = null;
            while (again == null && System.currentTimeMillis() < end) {
                try {
                    again = WsClient.connect(client, port, URI2, null, null, null); // a closed socket frees its place
                } catch (ExecutionException e) {
                    Thread.sleep(100);
                }
            }
            assertNotNull(again, "a place freed by a closed socket is taken again");
            four.add(again);
        } finally {
            for (WsClient c : four) {
                c.close();
            }
        }
    }

    /** deadline_ms over the WebSocket: generation stops at the deadline and the done frame says timeout. */
    @Test
    void aDeadlineEndsGenerationWithTimeout() throws Exception {
        try (WsClient c = ws()) {
            ObjectNode f = generate("deadline-1", 110);
            f.put("deadline_ms", 400);
            c.send(f);
            WsClient.Frame done = c.next(x -> "deadline-1".equals(x.id()) && x.type().equals("done"), 30_000);
            assertEquals("timeout", done.json().get("finish_reason").asText(), done.json().toString());
            int n = done.json().get("token_ids").size();
            assertTrue(n < 110, n + " tokens");
            ObjectNode bad = generate("deadline-2", 5);
            bad.put("deadline_ms", -1);
            c.send(bad);
            WsClient.Frame err = c.next(x -> "deadline-2".equals(x.id()), 10_000);
            assertEquals("invalid_request", err.json().get("code").asText());
            assertTrue(err.json().get("message").asText().contains("deadline_ms"));
        }
    }
}
