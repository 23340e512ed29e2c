package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.Fixtures;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 19: hostile input through the real entry points of a running service (in-process broker, fixture models,
 * a real Kafka producer and consumer, a real HTTP client and WebSocket client). Every case is answered or
 * dead-lettered with its reason, the good records around them are answered, nothing stays in flight, the node
 * stays ready, and no event loop blocks.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HostileInputTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    ServiceHarness harness;
    Vertx client;
    WebClient web;
    int port;
    byte[] png;
    String b64;

    @BeforeAll
    void start() throws Exception {
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("inference.max_batch_wait_ms", "5", "inference.step_delay_ms", "10"));
        client = Vertx.vertx();
        web = WebClient.create(client);
        port = harness.service.httpPort();
        png = Fixtures.image("blip2-opt-tiny", 0);
        b64 = Base64.getEncoder().encodeToString(png);
    }

    @AfterAll
    void stop() throws Exception {
        web.close();
        client.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        harness.close();
    }

    static <T> T await(io.vertx.core.Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    ProducerRecord<String, byte[]> raw(String key, byte[] value, String... headers) {
        ProducerRecord<String, byte[]> r = new ProducerRecord<>(harness.topics().requests(), key, value);
        for (int i = 0; i < headers.length; i += 2) {
            r.headers().add(headers[i], headers[i + 1] == null ? null : headers[i + 1].getBytes(StandardCharsets.UTF_8));
        }
        return r;
    }

    ProducerRecord<String, byte[]> json(String key, ObjectNode o) throws Exception {
        return new ProducerRecord<>(harness.topics().requests(), key, JSON.writeValueAsBytes(o));
    }

    ObjectNode caption(String id) {
        ObjectNode o = JSON.createObjectNode();
        if (id != null) {
            o.put("id", id);
        }
        o.put("task", "caption").put("image", b64);
        o.putObject("params").put("max_new_tokens", 4);
        return o;
    }

    static String header(ConsumerRecord<String, byte[]> r, String name) {
        Header h = r.headers().lastHeader(name);
        return h == null || h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
    }

    /** Everything on the output topics and the DLT, by key, until every key expected has its records. */
    Map<String, List<ConsumerRecord<String, byte[]>>> outputs(Map<String, Integer> expected, long timeoutMs) {
        var t = harness.topics();
        try (KafkaConsumer<String, byte[]> c = harness.consumer(List.of(t.captions(), t.answers(), t.deadLetter()))) {
            Map<String, List<ConsumerRecord<String, byte[]>>> byKey = new HashMap<>();
            ServiceHarness.readUntil(c, got -> {
                byKey.clear();
                for (var r : got) {
                    byKey.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r);
                }
                return expected.entrySet().stream().allMatch(e -> byKey.getOrDefault(e.getKey(), List.of()).size() >= e.getValue());
            }, timeoutMs);
            return byKey;
        }
    }

    void assertSettled() throws Exception {
        long end = System.currentTimeMillis() + 20_000;
        while (harness.service.metrics().inFlight().get() != 0 && System.currentTimeMillis() < end) {
            Thread.sleep(50);
        }
        assertEquals(0, harness.service.metrics().inFlight().get(), "nothing stays in flight");
        HttpResponse<Buffer> ready = await(web.get(port, "127.0.0.1", "/health/ready").send());
        assertEquals(200, ready.statusCode(), ready.bodyAsString());
        assertEquals("assigned", JSON.readTree(ready.bodyAsString()).path("consumer").asText(), "ready means the consumer is assigned");
        assertTrue(harness.blockedEventLoops.isEmpty(), harness.blockedEventLoops.toString());
    }

    void awaitStatus(String id, String status) throws Exception {
        long end = System.currentTimeMillis() + 20_000;
        while (System.currentTimeMillis() < end) {
            HttpResponse<Buffer> s = await(web.get(port, "127.0.0.1", "/v1/requests/" + id).send());
            if (s.statusCode() == 200 && JSON.readTree(s.bodyAsString()).path("status").asText().equals(status)) {
                return;
            }
            Thread.sleep(20);
        }
        throw new AssertionError(id + " never " + status);
    }

    @Test
    void kafkaRecordsOfAnyShapeAreAnsweredOrDeadLetteredAndThePartitionFlows() throws Exception {
        String run = UUID.randomUUID().toString().substring(0, 8) + "-";
        byte[] notUtf8 = {(byte) 0xff, (byte) 0xfe, (byte) 0xc3};
        String bigHeader = "x".repeat(2 << 20);
        Map<String, String> dead = new LinkedHashMap<>(); // key -> the error code it must get
        List<String> good = new ArrayList<>();
        List<ProducerRecord<String, byte[]>> records = new ArrayList<>();

        records.add(raw(run + "null-question", png, "blip2-task", "vqa", "blip2-question", null));
        dead.put(run + "null-question", "missing_question");
        records.add(raw(run + "null-task", png, "blip2-task", null));
        dead.put(run + "null-task", "unknown_task");
        records.add(raw(run + "two-tasks", png, "blip2-task", "caption", "blip2-task", "vqa"));
        dead.put(run + "two-tasks", "invalid_request");
        ProducerRecord<String, byte[]> binary = raw(run + "binary-prompt", png, "blip2-task", "caption");
        binary.headers().add("blip2-prompt", notUtf8);
        records.add(binary);
        dead.put(run + "binary-prompt", "invalid_request");
        records.add(raw(run + "tombstone", null));
        dead.put(run + "tombstone", "invalid_request");
        records.add(raw(run + "bad-image-big-headers", "no image".getBytes(), "blip2-task", "caption", "x-junk-1", bigHeader,
                "x-junk-2", bigHeader, "traceparent", null));
        dead.put(run + "bad-image-big-headers", "invalid_image");
        ObjectNode huge = caption(null);
        huge.put("prompt", "a cat ".repeat(2_500_000)); // 15 MB: inside the record limit, far outside the prompt's
        records.add(json(run + "huge-prompt", huge));
        dead.put(run + "huge-prompt", "prompt_too_long");
        ObjectNode lone = caption(null);
        lone.put("prompt", "a \ud800 photo");
        records.add(json(run + "lone-surrogate", lone));
        dead.put(run + "lone-surrogate", "invalid_request");
        ObjectNode cold = caption(null);
        ((ObjectNode) cold.get("params")).put("do_sample", true).put("temperature", 1e-300);
        records.add(json(run + "temperature-1e-300", cold));
        dead.put(run + "temperature-1e-300", "invalid_params");
        ObjectNode control = caption("bad\nid");
        records.add(json(run + "control-id", control));
        dead.put(run + "control-id", "invalid_request");
        records.add(raw(run + "evil\nINFO forged log line", "junk".getBytes(), "blip2-task", "caption"));
        dead.put(run + "evil\nINFO forged log line", "invalid_image");
        ObjectNode imageToken = caption(null);
        imageToken.put("prompt", "<image> a photo of");
        records.add(json(run + "image-token", imageToken));
        dead.put(run + "image-token", "invalid_request");
        // good ones between and after them, one with huge headers and a null trace header
        for (int i = 0; i < 4; i++) {
            records.add(2 + 3 * i, json(run + "good-" + i, caption(null)));
            good.add(run + "good-" + i);
        }
        records.add(raw(run + "good-raw-big-headers", png, "blip2-task", "caption", "blip2-params", "{\"max_new_tokens\":3}",
                "x-junk", bigHeader, "traceparent", null, "x-request-id", "abc"));
        good.add(run + "good-raw-big-headers");
        for (var r : records) {
            harness.send(r);
        }
        harness.send(raw(null, null)); // null key and value: dead-lettered under its record id

        Map<String, Integer> expected = new HashMap<>();
        dead.keySet().forEach(k -> expected.put(k, 1));
        good.forEach(k -> expected.put(k, 1));
        var out = outputs(expected, 60_000);
        for (var e : dead.entrySet()) {
            List<ConsumerRecord<String, byte[]>> got = out.get(e.getKey());
            assertNotNull(got, "an answer for " + e.getKey());
            assertEquals(1, got.size(), e.getKey());
            ConsumerRecord<String, byte[]> r = got.get(0);
            assertEquals(harness.topics().deadLetter(), r.topic(), e.getKey());
            assertEquals(e.getValue(), header(r, "blip2-error-code"), e.getKey() + ": " + header(r, "blip2-error-message"));
            String message = header(r, "blip2-error-message");
            assertTrue(message.length() < 1100, "the reason is bounded: " + message.length());
            assertFalse(message.contains("weight") || message.contains("Exception") || message.contains("io.blip2stream"),
                    "the reason names the request's fault: " + message);
        }
        var bigHeaders = out.get(run + "bad-image-big-headers").get(0);
        assertEquals("2", header(bigHeaders, "blip2-headers-dropped"), "headers too large to copy to the DLT are counted");
        for (String k : good) {
            ConsumerRecord<String, byte[]> r = out.get(k).get(0);
            assertNotEquals(harness.topics().deadLetter(), r.topic(), k + ": " + header(r, "blip2-error-message"));
            JsonNode result = JSON.readTree(r.value());
            assertTrue(result.path("token_ids").size() > 0, k);
            assertTrue(result.path("id").asText().startsWith(harness.topics().requests() + "-"), "an id from where the record is: " + result);
        }
        assertEquals("abc", header(out.get(run + "good-raw-big-headers").get(0), "x-request-id"), "trace headers follow");
        assertEquals(null, out.get(run + "good-raw-big-headers").get(0).headers().lastHeader("x-junk"));
        assertSettled();
    }

    @Test
    void idsAreUniqueAmongLiveRequestsAndKeysAreNotIds() throws Exception {
        String run = UUID.randomUUID().toString().substring(0, 8) + "-";
        // a camera sends two images under its key, with no ids: two requests, both answered, keyed by the camera
        harness.send(raw(run + "camera-7", png, "blip2-task", "caption", "blip2-params", "{\"max_new_tokens\":3}"));
        harness.send(raw(run + "camera-7", png, "blip2-task", "caption", "blip2-params", "{\"max_new_tokens\":5}"));
        // two records with the same explicit id and different content, one right after the other: the second is refused
        ObjectNode first = caption(run + "same");
        ((ObjectNode) first.get("params")).put("max_new_tokens", 20).put("min_new_tokens", 20);
        harness.send(json(run + "a", first));
        awaitStatus(run + "same", "running");
        ObjectNode vqa = JSON.createObjectNode().put("id", run + "same").put("task", "vqa").put("image", b64).put("question", "what?");
        harness.send(json(run + "b", vqa));
        var out = outputs(Map.of(run + "camera-7", 2, run + "a", 1, run + "b", 1), 60_000);
        List<ConsumerRecord<String, byte[]>> camera = out.get(run + "camera-7");
        assertEquals(2, camera.size());
        assertNotEquals(JSON.readTree(camera.get(0).value()).path("id").asText(), JSON.readTree(camera.get(1).value()).path("id").asText(),
                "a reused key is not an id");
        ConsumerRecord<String, byte[]> a = out.get(run + "a").get(0);
        assertEquals(harness.topics().captions(), a.topic());
        assertEquals(20, JSON.readTree(a.value()).path("token_ids").size());
        ConsumerRecord<String, byte[]> b = out.get(run + "b").get(0);
        assertEquals(harness.topics().deadLetter(), b.topic());
        assertEquals("duplicate_id", header(b, "blip2-error-code"));
        JsonNode state = JSON.readTree(await(web.get(port, "127.0.0.1", "/v1/requests/" + run + "same").send()).bodyAsString());
        assertEquals("done", state.path("status").asText(), "the refusal did not touch the first request: " + state);
        assertEquals("caption", state.path("task").asText());

        // the same content under the same id, again, after it finished: the same answer, not generated again
        harness.send(json(run + "c", first));
        var again = outputs(Map.of(run + "c", 1), 30_000).get(run + "c").get(0);
        assertEquals(harness.topics().captions(), again.topic());
        assertEquals(JSON.readTree(a.value()), JSON.readTree(again.value()), "the stored answer");

        // an id an HTTP request used, then a Kafka record with other content: refused, not "cancelled"
        HttpResponse<Buffer> h = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(
                new io.vertx.core.json.JsonObject().put("id", run + "http").put("image", b64).put("params",
                        new io.vertx.core.json.JsonObject().put("max_new_tokens", 3))));
        assertEquals(200, h.statusCode(), h.bodyAsString());
        harness.send(json(run + "d", caption(run + "http")));
        var d = outputs(Map.of(run + "d", 1), 30_000).get(run + "d").get(0);
        assertEquals("duplicate_id", header(d, "blip2-error-code"));
        // over HTTP: the same content again gives the same answer; other content is refused with 409
        HttpResponse<Buffer> same = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(
                new io.vertx.core.json.JsonObject().put("id", run + "http").put("image", b64).put("params",
                        new io.vertx.core.json.JsonObject().put("max_new_tokens", 3))));
        assertEquals(200, same.statusCode(), same.bodyAsString());
        assertEquals(JSON.readTree(h.bodyAsString()), JSON.readTree(same.bodyAsString()));
        HttpResponse<Buffer> other = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(
                new io.vertx.core.json.JsonObject().put("id", run + "http").put("image", b64).put("prompt", "a photo of")));
        assertEquals(409, other.statusCode(), other.bodyAsString());
        assertEquals("duplicate_id", JSON.readTree(other.bodyAsString()).path("error").path("code").asText());
        assertSettled();
    }

    @Test
    void httpRefusesHostileTextAndParametersWithoutCost() throws Exception {
        io.vertx.core.json.JsonObject body = new io.vertx.core.json.JsonObject().put("image", b64).put("prompt", "a cat ".repeat(2_500_000));
        long t0 = System.nanoTime();
        HttpResponse<Buffer> r = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(body));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertEquals(400, r.statusCode(), r.bodyAsString());
        assertEquals("prompt_too_long", JSON.readTree(r.bodyAsString()).path("error").path("code").asText());
        assertTrue(ms < 10_000, "refused before tokenizing: " + ms + " ms");
        HttpResponse<Buffer> cold = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(new io.vertx.core.json.JsonObject()
                .put("image", b64).put("params", new io.vertx.core.json.JsonObject().put("do_sample", true).put("temperature", 1e-300))));
        assertEquals(400, cold.statusCode(), cold.bodyAsString());
        assertEquals("invalid_params", JSON.readTree(cold.bodyAsString()).path("error").path("code").asText());
        // a normal request right after them is answered
        HttpResponse<Buffer> ok = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(
                new io.vertx.core.json.JsonObject().put("image", b64).put("params", new io.vertx.core.json.JsonObject().put("max_new_tokens", 3))));
        assertEquals(200, ok.statusCode(), ok.bodyAsString());
        assertEquals(3, JSON.readTree(ok.bodyAsString()).path("token_ids").size());
        assertSettled();
    }

    @Test
    void aWebSocketCannotTakeTheIdOfALiveRequest() throws Exception {
        String id = "live-" + UUID.randomUUID();
        ObjectNode slow = caption(id);
        ((ObjectNode) slow.get("params")).put("max_new_tokens", 40).put("min_new_tokens", 40);
        harness.send(json("k-" + id, slow));
        awaitStatus(id, "running");
        try (WsClient c = WsClient.connect(client, port, "/v1/stream", null, null, null)) {
            ObjectNode f = JSON.createObjectNode().put("type", "generate").put("id", id).put("task", "caption").put("image", b64);
            c.send(f);
            WsClient.Frame frame = c.next(x -> id.equals(x.id()), 20_000);
            assertEquals("error", frame.type(), frame.json().toString());
            assertEquals("duplicate_id", frame.json().path("code").asText());
        }
        var out = outputs(Map.of("k-" + id, 1), 30_000).get("k-" + id).get(0);
        assertEquals(40, JSON.readTree(out.value()).path("token_ids").size(), "the live request went on");
        assertSettled();
    }
}
