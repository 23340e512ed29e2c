package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.model.Fixtures;
import io.vertx.core.MultiMap;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 23, item 2: images by reference through the running service, against a real HTTP server on this machine:
 * Kafka records ({@code image_url} in JSON, the header {@code blip2-image-url} in the raw form), the HTTP API (JSON
 * and form) and the OpenAI API; the image fetched keys the visual-prompt cache as the same image inline does; and
 * each refusal reaches the dead-letter topic, or the client as a 4xx, with its reason.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ImagesByReferenceTest {
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir
    static Path tmp;
    ServiceHarness harness;
    Vertx client;
    WebClient web;
    HttpServer images;
    int imagesPort;
    int port;
    byte[] png;
    Path shared;
    final List<String> fetched = new java.util.concurrent.CopyOnWriteArrayList<>();
    byte[] other;
    byte[] third;

    @BeforeAll
    void start() throws Exception {
        png = Fixtures.image("blip2-opt-tiny", 0);
        other = Fixtures.image("blip2-opt-tiny", 1); // an image no other test sends: its first visual prompt is computed
        third = Fixtures.image("blip2-opt-tiny", 2);
        client = Vertx.vertx();
        web = WebClient.create(client);
        images = client.createHttpServer().requestHandler(req -> {
            fetched.add(req.uri());
            switch (req.path()) {
                case "/cat.png" -> req.response().putHeader("content-type", "image/png").end(Buffer.buffer(png));
                case "/other.png" -> req.response().putHeader("content-type", "image/png").end(Buffer.buffer(other));
                case "/third.png" -> req.response().putHeader("content-type", "image/png").end(Buffer.buffer(third));
                case "/big" -> req.response().putHeader("content-length", String.valueOf(50_000_000)).write(Buffer.buffer(new byte[1000]));
                case "/slow" -> req.response().setChunked(true).write("x");
                case "/page.html" -> req.response().putHeader("content-type", "text/html").end("<html>not an image</html>");
                case "/redirect-out" -> req.response().setStatusCode(302)
                        .putHeader("location", "http://127.0.0.1:" + imagesPort + "/cat.png").end();
                default -> req.response().setStatusCode(404).end();
            }
        });
        images.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        imagesPort = images.actualPort();
        shared = Files.createDirectories(tmp.resolve("shared"));
        Files.write(shared.resolve("cat.png"), png);
        Files.write(shared.resolve("other.png"), other);
        Files.write(tmp.resolve("outside.png"), png);
        // an object store inside the network: localhost only, over http, private addresses allowed
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("inference.max_batch_wait_ms", "5",
                "images.allowed_hosts", "localhost", "images.allow_http", "true", "images.allow_private_addresses", "true",
                "images.fetch_timeout_ms", "1500", "images.file_root", shared.toString(), "limits.max_image_bytes", "1000000"));
        port = harness.service.httpPort();
    }

    @AfterAll
    void stop() throws Exception {
        web.close();
        client.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        harness.close();
    }

    String url(String path) {
        return "http://localhost:" + imagesPort + path;
    }

    static <T> T await(io.vertx.core.Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    @Test
    void kafkaRecordsByReferenceAreAnsweredAndShareTheCacheWithTheSameImageInline() throws Exception {
        String topic = harness.topics().requests();
        String b64 = Base64.getEncoder().encodeToString(other);
        harness.send(new ProducerRecord<>(topic, "inline", ("{\"id\":\"ref-inline\",\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes()));
        Map<String, JsonNode> out = captions(List.of("ref-inline"));
        harness.send(new ProducerRecord<>(topic, "by-url", ("{\"id\":\"ref-url\",\"task\":\"caption\",\"image_url\":\"" + url("/other.png")
                + "?X-Amz-Signature=abc\"}").getBytes()));
        ProducerRecord<String, byte[]> raw = new ProducerRecord<>(topic, "by-file", new byte[0]);
        raw.headers().add("blip2-id", "ref-file".getBytes()).add("blip2-task", "caption".getBytes())
                .add("blip2-image-url", shared.resolve("other.png").toUri().toString().getBytes());
        harness.send(raw);
        out.putAll(captions(List.of("ref-url", "ref-file")));
        assertEquals("computed", out.get("ref-inline").get("timings").get("visual_prompt").asText());
        for (String id : List.of("ref-url", "ref-file")) {
            assertEquals(out.get("ref-inline").get("text"), out.get(id).get("text"), id + ": the same caption as inline");
            assertEquals(out.get("ref-inline").get("token_ids"), out.get(id).get("token_ids"), id);
            assertEquals("cached", out.get(id).get("timings").get("visual_prompt").asText(),
                    id + ": the image's content hash keys the cache, however it came");
        }
        // and the other way round: by URL first, then the same image inline
        harness.send(new ProducerRecord<>(topic, "url-first", ("{\"id\":\"ref-url-first\",\"task\":\"caption\",\"image_url\":\""
                + url("/third.png") + "\"}").getBytes()));
        Map<String, JsonNode> first = captions(List.of("ref-url-first"));
        harness.send(new ProducerRecord<>(topic, "inline-after", ("{\"id\":\"ref-inline-after\",\"task\":\"caption\",\"image\":\""
                + Base64.getEncoder().encodeToString(third) + "\"}").getBytes()));
        Map<String, JsonNode> after = captions(List.of("ref-inline-after"));
        assertEquals("computed", first.get("ref-url-first").get("timings").get("visual_prompt").asText());
        assertEquals("cached", after.get("ref-inline-after").get("timings").get("visual_prompt").asText(),
                "the same image inline after it came by URL");
        assertEquals(first.get("ref-url-first").get("text"), after.get("ref-inline-after").get("text"));
    }

    /** The captions of the given ids, read from the captions topic. */
    private Map<String, JsonNode> captions(List<String> ids) throws Exception {
        Map<String, JsonNode> out = new HashMap<>();
        try (KafkaConsumer<String, byte[]> c = harness.consumer(List.of(harness.topics().captions()))) {
            for (ConsumerRecord<String, byte[]> r : ServiceHarness.readUntil(c, l -> l.stream().filter(r -> ids.stream()
                    .anyMatch(id -> new String(r.value(), StandardCharsets.UTF_8).contains("\"" + id + "\""))).count() >= ids.size(), 60_000)) {
                JsonNode o = JSON.readTree(r.value());
                if (ids.contains(o.get("id").asText())) {
                    out.put(o.get("id").asText(), o);
                }
            }
        }
        assertEquals(ids.size(), out.size(), "answered: " + ids);
        return out;
    }

    @Test
    void eachRefusalReachesTheDeadLetterTopicWithItsReason() throws Exception {
        String topic = harness.topics().requests();
        Map<String, String> urls = new java.util.LinkedHashMap<>();
        urls.put("dlt-host", "http://127.0.0.1:" + imagesPort + "/cat.png"); // an address, not the host allowed
        urls.put("dlt-redirect", url("/redirect-out"));
        urls.put("dlt-large", url("/big"));
        urls.put("dlt-slow", url("/slow"));
        urls.put("dlt-html", url("/page.html"));
        urls.put("dlt-missing", url("/nothing.png"));
        urls.put("dlt-outside", tmp.resolve("outside.png").toUri().toString());
        urls.put("dlt-scheme", "gopher://localhost/cat.png");
        for (Map.Entry<String, String> e : urls.entrySet()) {
            harness.send(new ProducerRecord<>(topic, e.getKey(), ("{\"id\":\"" + e.getKey() + "\",\"task\":\"caption\",\"image_url\":\""
                    + e.getValue() + "\"}").getBytes()));
        }
        // both at once, and a raw record with the header and a value
        harness.send(new ProducerRecord<>(topic, "dlt-both", ("{\"id\":\"dlt-both\",\"task\":\"caption\",\"image\":\""
                + Base64.getEncoder().encodeToString(png) + "\",\"image_url\":\"" + url("/cat.png") + "\"}").getBytes()));
        // a refused request fetches nothing: an unknown task with an image_url never reaches the image server
        harness.send(new ProducerRecord<>(topic, "dlt-task", ("{\"id\":\"dlt-task\",\"task\":\"paint\",\"image_url\":\"" + url("/cat.png?task") + "\"}").getBytes()));
        Map<String, String> codes = new HashMap<>();
        Map<String, String> messages = new HashMap<>();
        try (KafkaConsumer<String, byte[]> c = harness.consumer(List.of(harness.topics().deadLetter()))) {
            for (ConsumerRecord<String, byte[]> r : ServiceHarness.readUntil(c, l -> l.stream()
                    .filter(r -> r.key().startsWith("dlt-")).count() >= urls.size() + 2, 60_000)) {
                codes.put(r.key(), new String(r.headers().lastHeader("blip2-error-code").value(), StandardCharsets.UTF_8));
                messages.put(r.key(), new String(r.headers().lastHeader("blip2-error-message").value(), StandardCharsets.UTF_8));
            }
        }
        Map<String, String> want = new HashMap<>();
        want.put("dlt-host", "image_url_not_allowed");
        want.put("dlt-redirect", "image_url_not_allowed");
        want.put("dlt-large", "image_too_large");
        want.put("dlt-slow", "image_fetch_timeout");
        want.put("dlt-html", "invalid_image");
        want.put("dlt-missing", "image_fetch_failed");
        want.put("dlt-outside", "image_url_not_allowed");
        want.put("dlt-scheme", "image_url_not_allowed");
        want.put("dlt-both", "invalid_request");
        want.put("dlt-task", "unknown_task");
        assertEquals(want, codes, "messages: " + messages);
        assertTrue(messages.get("dlt-host").contains("'127.0.0.1', which is not in images.allowed_hosts"), messages.get("dlt-host"));
        assertTrue(messages.get("dlt-redirect").contains("redirected to the host '127.0.0.1'"), messages.get("dlt-redirect"));
        assertTrue(messages.get("dlt-large").contains("50000000 bytes; the limit is 1000000"), messages.get("dlt-large"));
        assertTrue(messages.get("dlt-slow").contains("1500 ms (images.fetch_timeout_ms)"), messages.get("dlt-slow"));
        assertTrue(messages.get("dlt-html").contains("not an image"), messages.get("dlt-html"));
        assertTrue(messages.get("dlt-missing").contains("answered 404"), messages.get("dlt-missing"));
        assertTrue(messages.get("dlt-outside").contains("outside images.file_root"), messages.get("dlt-outside"));
        assertTrue(fetched.stream().noneMatch(u -> u.contains("?task")), "no fetch for a request refused anyway: " + fetched);
        assertTrue(fetched.stream().anyMatch(u -> u.startsWith("/big")), "the image server was reached for the others: " + fetched);
    }

    @Test
    void theHttpAndOpenAiApisTakeImagesByReference() throws Exception {
        HttpResponse<Buffer> json = await(web.post(port, "127.0.0.1", "/v1/caption")
                .sendJsonObject(new JsonObject().put("image_url", url("/cat.png"))));
        assertEquals(200, json.statusCode(), json.bodyAsString());
        String text = json.bodyAsJsonObject().getString("text");
        MultiMap form = MultiMap.caseInsensitiveMultiMap().add("image_url", shared.resolve("cat.png").toUri().toString());
        HttpResponse<Buffer> viaForm = await(web.post(port, "127.0.0.1", "/v1/caption").sendForm(form));
        assertEquals(200, viaForm.statusCode(), viaForm.bodyAsString());
        assertEquals(text, viaForm.bodyAsJsonObject().getString("text"));
        String model = await(web.get(port, "127.0.0.1", "/v1/models").send()).bodyAsJsonObject().getJsonArray("data").getJsonObject(0).getString("id");
        JsonObject chat = new JsonObject().put("model", model).put("messages", new JsonArray().add(new JsonObject().put("role", "user")
                .put("content", new JsonArray().add(new JsonObject().put("type", "image_url")
                        .put("image_url", new JsonObject().put("url", url("/cat.png")))))));
        HttpResponse<Buffer> c = await(web.post(port, "127.0.0.1", "/v1/chat/completions").sendJsonObject(chat));
        assertEquals(200, c.statusCode(), c.bodyAsString());
        assertEquals(text, c.bodyAsJsonObject().getJsonArray("choices").getJsonObject(0).getJsonObject("message").getString("content").strip());
        // refusals: the status and OpenAI's error shape, with the reason
        HttpResponse<Buffer> out = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(new JsonObject().put("image_url", url("/redirect-out"))));
        assertEquals(400, out.statusCode());
        assertEquals("image_url_not_allowed", out.bodyAsJsonObject().getJsonObject("error").getString("code"));
        HttpResponse<Buffer> big = await(web.post(port, "127.0.0.1", "/v1/chat/completions").sendJsonObject(chat.copy().put("messages",
                new JsonArray().add(new JsonObject().put("role", "user").put("content", new JsonArray().add(new JsonObject()
                        .put("type", "image_url").put("image_url", new JsonObject().put("url", url("/big")))))))));
        assertEquals(413, big.statusCode(), big.bodyAsString());
        assertEquals("image_too_large", big.bodyAsJsonObject().getJsonObject("error").getString("code"));
    }

    @Test
    void byDefaultAHostOnAPrivateAddressIsRefused() throws Exception {
        try (ServiceHarness strict = new ServiceHarness(tmp.resolve("strict"), Map.of("images.allowed_hosts", "localhost",
                "images.allow_http", "true"))) {
            HttpResponse<Buffer> r = await(web.post(strict.service.httpPort(), "127.0.0.1", "/v1/caption")
                    .sendJsonObject(new JsonObject().put("image_url", url("/cat.png"))));
            assertEquals(400, r.statusCode(), r.bodyAsString());
            JsonObject error = r.bodyAsJsonObject().getJsonObject("error");
            assertEquals("image_url_not_allowed", error.getString("code"));
            assertTrue(error.getString("message").contains("not public"), error.getString("message"));
            String topic = strict.topics().requests();
            strict.send(new ProducerRecord<>(topic, "private", ("{\"id\":\"private\",\"task\":\"caption\",\"image_url\":\""
                    + url("/cat.png") + "\"}").getBytes()));
            try (KafkaConsumer<String, byte[]> c = strict.consumer(List.of(strict.topics().deadLetter()))) {
                List<ConsumerRecord<String, byte[]>> dead = ServiceHarness.readUntil(c, l -> !l.isEmpty(), 60_000);
                assertEquals(1, dead.size());
                assertEquals("image_url_not_allowed", new String(dead.get(0).headers().lastHeader("blip2-error-code").value()));
                assertNotNull(dead.get(0).headers().lastHeader("blip2-error-message"));
            }
        }
    }
}
