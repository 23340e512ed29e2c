package io.blip2stream.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.cluster.DeployFilesTest;
import io.blip2stream.model.Fixtures;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code serve} as a user runs it: the packaged jar with only BLIP2_MODEL and BLIP2_DATA_DIR set (plus free ports,
 * so the test runs beside anything else), a producer in both forms, results keyed by id, token records, a dead
 * letter, readiness over HTTP, and a graceful SIGTERM.
 */
@Tag("e2e")
class ServeIT {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @Test
    void serveAnswersKafkaAndStopsGracefully() throws Exception {
        ServeProcess serve = new ServeProcess(tmp.resolve("data"), List.of(), List.of(), Map.of());
        int kafka = serve.kafkaPort;
        int http = serve.httpPort;
        StringBuffer log = serve.log;
        try {
            assertTrue(serve.awaitReady(120), "the service starts: " + log);
            String out = log.toString();
            assertTrue(out.contains("in-process"), "says it started a broker in-process");
            assertTrue(out.contains("localhost:" + kafka) && out.contains(":" + http), "says where it listens");
            assertTrue(out.contains("kcat -P"), "prints a copy-paste example");
            // issue 24, start-up: no Hazelcast module warning (the jar's manifest opens what it needs), no CP subsystem
            // warning (it does not apply), and the banner says what was loaded
            assertTrue(!out.contains("Java modular environment") && !out.contains("--add-opens"), "no Hazelcast module warning:\n" + out);
            assertTrue(!out.contains("CP Subsystem is not enabled"), "no CP subsystem warning:\n" + out);
            assertTrue(out.contains("tasks:    caption, vqa, match, embed"), "the banner names the tasks served:\n" + out);
            assertTrue(out.contains("dtype float32"), "and the dtype");

            HttpClient client = HttpClient.newHttpClient();
            var ready = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + http + "/health/ready")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ready.statusCode(), ready.body());
            // issue 24: each image's HEALTHCHECK, run as Docker runs it (bash, BLIP2_HTTP_PORT), passes on the packaged service
            for (Path dockerfile : DeployFilesTest.DOCKERFILES) {
                assertEquals(0, DeployFilesTest.run(DeployFilesTest.healthCheck(dockerfile), http), dockerfile + ": healthy");
            }

            String bootstrap = "localhost:" + kafka;
            byte[] png = Files.readAllBytes(Fixtures.dir("blip2-opt-tiny").resolve("image0.png"));
            try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(Map.of("bootstrap.servers", bootstrap),
                    new StringSerializer(), new ByteArraySerializer())) {
                producer.send(new ProducerRecord<>("blip2.requests", "k1", ("{\"id\":\"json-1\",\"task\":\"caption\",\"stream\":true,"
                        + "\"params\":{\"max_new_tokens\":12},\"image\":\"" + Base64.getEncoder().encodeToString(png) + "\"}").getBytes())).get();
                ProducerRecord<String, byte[]> raw = new ProducerRecord<>("blip2.requests", "raw-1", png);
                raw.headers().add("blip2-task", "vqa".getBytes()).add("blip2-question", "what color is the circle?".getBytes())
                        .add("blip2-params", "{\"max_new_tokens\":5}".getBytes());
                producer.send(raw).get();
                producer.send(new ProducerRecord<>("blip2.requests", "bad-1", "{\"task\":\"caption\"}".getBytes())).get();
            }
            Map<String, ConsumerRecord<String, byte[]>> byKey = new HashMap<>();
            int tokens = 0;
            Map<String, Object> cc = new HashMap<>();
            cc.put("bootstrap.servers", bootstrap);
            cc.put("group.id", "it-" + UUID.randomUUID());
            try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(cc, new StringDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> tps = new ArrayList<>();
                for (String t : List.of("blip2.captions", "blip2.answers", "blip2.requests.DLT", "blip2.tokens")) {
                    c.partitionsFor(t).forEach(pi -> tps.add(new TopicPartition(t, pi.partition())));
                }
                c.assign(tps);
                c.seekToBeginning(tps);
                long end = System.currentTimeMillis() + 60_000;
                while (System.currentTimeMillis() < end && (byKey.size() < 3 || tokens < 12)) { // token records may trail the result
                    for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(c.poll(Duration.ofMillis(200)))) {
                        if (r.topic().equals("blip2.tokens")) {
                            tokens++;
                        } else {
                            byKey.put(r.key(), r);
                        }
                    }
                }
            }
            assertEquals("blip2.captions", byKey.get("k1").topic(), "keyed as its input was");
            JsonNode caption = JSON.readTree(byKey.get("k1").value());
            assertEquals("json-1", caption.get("id").asText(), "named by its own id");
            assertEquals(Fixtures.cases("blip2-opt-tiny").get(0).get("greedy_new_tokens"), caption.get("token_ids"));
            assertEquals(12, tokens, "one token record per generated token");
            assertEquals("blip2.answers", byKey.get("raw-1").topic());
            assertEquals(5, JSON.readTree(byKey.get("raw-1").value()).get("token_ids").size());
            assertEquals("blip2.requests.DLT", byKey.get("bad-1").topic());
            assertEquals("missing_image", new String(byKey.get("bad-1").headers().lastHeader("blip2-error-code").value()));

            // a WebSocket client sees accepted, one token frame per token, then done, with the command line's ids
            List<JsonNode> frames = new java.util.concurrent.CopyOnWriteArrayList<>();
            java.util.concurrent.CompletableFuture<Void> done = new java.util.concurrent.CompletableFuture<>();
            java.net.http.WebSocket ws = client.newWebSocketBuilder().buildAsync(URI.create("ws://127.0.0.1:" + http + "/v1/stream"),
                    new java.net.http.WebSocket.Listener() {
                        final StringBuilder buf = new StringBuilder();

                        @Override
                        public java.util.concurrent.CompletionStage<?> onText(java.net.http.WebSocket w, CharSequence data, boolean last) {
                            buf.append(data);
                            if (last) {
                                try {
                                    JsonNode f = JSON.readTree(buf.toString());
                                    frames.add(f);
                                    if (f.get("type").asText().equals("done") || f.get("type").asText().equals("error")) {
                                        done.complete(null);
                                    }
                                } catch (Exception e) {
                                    done.completeExceptionally(e);
                                }
                                buf.setLength(0);
                            }
                            w.request(1);
                            return null;
                        }
                    }).get(10, TimeUnit.SECONDS);
            ws.sendText("{\"type\":\"generate\",\"id\":\"ws-it\",\"task\":\"caption\",\"params\":{\"max_new_tokens\":12},\"image\":\""
                    + Base64.getEncoder().encodeToString(png) + "\"}", true);
            done.get(60, TimeUnit.SECONDS);
            ws.sendClose(java.net.http.WebSocket.NORMAL_CLOSURE, "bye");
            assertEquals("accepted", frames.get(0).get("type").asText());
            assertEquals(14, frames.size(), "accepted, 12 tokens, done: " + frames);
            for (int i = 1; i <= 12; i++) {
                assertEquals("token", frames.get(i).get("type").asText());
                assertEquals(caption.get("token_ids").get(i - 1), frames.get(i).get("token_id"));
            }
            assertEquals(caption.get("token_ids"), frames.get(13).get("token_ids"));

            // issue 24: a form's mistakes are named with how to fix them, never in a library's words
            URI captionUri = URI.create("http://127.0.0.1:" + http + "/v1/caption");
            JsonNode wrongField = JSON.readTree(client.send(multipart(captionUri, "file", png, Map.of()),
                    HttpResponse.BodyHandlers.ofString()).body());
            assertEquals("missing_image", wrongField.path("error").path("code").asText(), wrongField.toString());
            assertTrue(wrongField.path("error").path("message").asText().contains("no file field named image (it has file)")
                    && wrongField.path("error").path("message").asText().contains("-F image=@"), wrongField.toString());
            JsonNode textImage = JSON.readTree(client.send(multipart(captionUri, null, null, Map.of("image", "photo.png")),
                    HttpResponse.BodyHandlers.ofString()).body());
            assertTrue(textImage.path("error").path("message").asText().startsWith("the form field image is text, not a file"), textImage.toString());
            var badParams = client.send(multipart(captionUri, "image", png, Map.of("params", "notjson")), HttpResponse.BodyHandlers.ofString());
            assertEquals(400, badParams.statusCode(), badParams.body());
            String paramsMessage = JSON.readTree(badParams.body()).path("error").path("message").asText();
            assertEquals("invalid_params", JSON.readTree(badParams.body()).path("error").path("code").asText());
            assertTrue(paramsMessage.startsWith("the form field params") && paramsMessage.contains("is not JSON: unexpected 'notjson'")
                    && paramsMessage.endsWith("at line 1, column 1"), paramsMessage);
            var badBody = client.send(HttpRequest.newBuilder(captionUri).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"task\": caption}")).build(), HttpResponse.BodyHandlers.ofString());
            String bodyMessage = JSON.readTree(badBody.body()).path("error").path("message").asText();
            assertTrue(bodyMessage.startsWith("the body is not JSON: unexpected 'caption'") && bodyMessage.contains("column 10"), bodyMessage);
            for (String m : List.of(paramsMessage, bodyMessage, wrongField.toString())) {
                assertTrue(!m.contains("REDACTED") && !m.contains("was expecting") && !m.contains("Jackson"), m);
            }

            // the load generator through Kafka (what load-tests/throughput.sh runs): a closed loop of 2, after 3
            // warm-up requests that are sent and answered but not counted
            CommandLineIT.Run load = CommandLineIT.run("load", "@load-tests/scenarios/caption-closed-8.args", "--requests", "5",
                    "--concurrency", "2", "--warmup", "3", "--params", "{\"max_new_tokens\":4}",
                    "--bootstrap-servers", bootstrap, "--timeout", "60", "--json");
            assertEquals(0, load.exit(), load.out() + load.err());
            String[] lines = load.out().trim().split("\n");
            JsonNode report = JSON.readTree(lines[lines.length - 1]);
            assertEquals(5, report.get("sent").asInt(), load.out());
            assertEquals(5, report.get("answered").asInt(), "the warm-up's answers are not counted: " + load.out());
            assertEquals(0, report.get("deadLetters").asInt());
            assertTrue(report.get("p99").asDouble() >= report.get("p50").asDouble() && report.get("p50").asDouble() > 0);
            assertTrue(report.get("serverStagesP50").get("decode").asDouble() > 0, "server-side stages from the results' timings");
        } finally {
            boolean exited = serve.stop(); // SIGTERM, as Kubernetes sends it
            System.out.println("---- serve's output\n" + log);
            assertTrue(exited, "SIGTERM stops the service");
        }
        assertTrue(log.toString().contains("Blip2Service - stopped"), "it drains and closes");
        for (Path dockerfile : DeployFilesTest.DOCKERFILES) {
            assertNotEquals(0, DeployFilesTest.run(DeployFilesTest.healthCheck(dockerfile), http), dockerfile + ": unhealthy once it stopped");
        }
    }

    /** A multipart/form-data POST as curl -F sends it: one file part (if {@code fileField}) and text fields. */
    static HttpRequest multipart(URI uri, String fileField, byte[] file, Map<String, String> fields) {
        String boundary = "----it" + UUID.randomUUID();
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        fields.forEach((k, v) -> b.writeBytes(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + k + "\"\r\n\r\n" + v
                + "\r\n").getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        if (fileField != null) {
            b.writeBytes(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + fileField + "\"; filename=\"photo.png\"\r\n"
                    + "Content-Type: image/png\r\n\r\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
            b.writeBytes(file);
            b.writeBytes("\r\n".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        }
        b.writeBytes(("--" + boundary + "--\r\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
        return HttpRequest.newBuilder(uri).header("Content-Type", "multipart/form-data; boundary=" + boundary)
                .POST(HttpRequest.BodyPublishers.ofByteArray(b.toByteArray())).build();
    }
}
