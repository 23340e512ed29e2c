package io.blip2stream.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 19, item 2, against the packaged jar: a record that really kills the process (the test-only crash marker
 * halts the JVM while the record is decoded, as the native tokenizer's abort did) kills it on its first delivery,
 * and again on its second, when it runs alone; on the third it is dead-lettered with {@code poison_suspected}
 * without running, and the records behind it on its partition are answered, each once, on the same data.
 */
@Tag("e2e")
class PoisonPillIT {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String MARKER = "__this-record-kills-the-service__";

    @TempDir
    Path tmp;

    @Test
    void aRecordThatKillsTheServiceTwiceIsDeadLetteredAndTheRecordsBehindItAreAnswered() throws Exception {
        Path data = tmp.resolve("data");
        Path conf = tmp.resolve("fast-rejoin.yaml");
        // a dead member's partitions come back after its session: 6 s here instead of 45
        Files.writeString(conf, "kafka:\n  consumer:\n    session.timeout.ms: '6000'\n    heartbeat.interval.ms: '500'\n");
        List<String> jvm = List.of("-Xmx1g", "-Dblip2.test.crash_marker=" + MARKER);
        List<String> args = List.of("--config", conf.toString());
        Map<String, String> env = Map.of("BLIP2_WARMUP_REQUESTS", "0");
        String png = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));

        ServeProcess first = new ServeProcess(data, jvm, args, env);
        List<String> ids = new ArrayList<>();
        try {
            assertTrue(first.awaitReady(120), "the service starts: " + first.log);
            // in one transaction: the service (read_committed) sees all seven at once, so the poison cannot kill the
            // process, and the in-process broker with it, before the records behind it are written
            try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(Map.of("bootstrap.servers", "localhost:" + first.kafkaPort,
                    "acks", "all", "transactional.id", "poison-it"), new StringSerializer(), new ByteArraySerializer())) {
                producer.initTransactions();
                producer.beginTransaction();
                for (int i = 0; i < 7; i++) {
                    String id = i == 1 ? "poison" : "good-" + i;
                    ids.add(id);
                    ObjectNode o = JSON.createObjectNode().put("id", id).put("task", "caption").put("image", png);
                    if (i == 1) {
                        o.put("prompt", "a photo of " + MARKER);
                    }
                    o.putObject("params").put("max_new_tokens", 3);
                    // one key: one partition, the records behind the poison wait on it
                    producer.send(new ProducerRecord<>("blip2.requests", "camera-1", JSON.writeValueAsBytes(o)));
                }
                producer.commitTransaction();
            }
            assertTrue(first.process.waitFor(120, TimeUnit.SECONDS), "the poison record killed the service: " + tail(first));
            assertEquals(134, first.process.exitValue());
        } finally {
            first.process.destroyForcibly();
        }

        ServeProcess second = ServeProcess.again(first, data, jvm, args, env);
        try {
            assertTrue(second.process.waitFor(180, TimeUnit.SECONDS), "run alone, it killed the service again: " + tail(second));
            assertEquals(134, second.process.exitValue(), tail(second));
            assertTrue(second.log.indexOf("runs alone") >= 0, tail(second));
        } finally {
            second.process.destroyForcibly();
        }

        ServeProcess third = ServeProcess.again(first, data, jvm, args, env);
        try {
            assertTrue(third.awaitReady(180), "the third start stays up: " + tail(third));
            var ready = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(
                    java.net.URI.create("http://127.0.0.1:" + third.httpPort + "/health/ready")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ready.statusCode(), ready.body());
            assertTrue(ready.body().contains("\"consumer\":\"assigned\""), "ready after a crash means assigned: " + ready.body());
            Map<String, List<ConsumerRecord<String, byte[]>>> byId = read(third.kafkaPort, ids.size(), 120_000);
            List<ConsumerRecord<String, byte[]>> poison = byId.get("poison");
            assertEquals(1, poison == null ? 0 : poison.size(), "the poison record is answered once: " + byId.keySet());
            assertEquals("blip2.requests.DLT", poison.get(0).topic());
            assertEquals("poison_suspected", new String(poison.get(0).headers().lastHeader("blip2-error-code").value(), StandardCharsets.UTF_8));
            for (String id : ids) {
                if (!id.equals("poison")) {
                    List<ConsumerRecord<String, byte[]>> got = byId.get(id);
                    assertEquals(1, got == null ? 0 : got.size(), id + " answered exactly once");
                    assertEquals("blip2.captions", got.get(0).topic(), id);
                    assertEquals(3, JSON.readTree(got.get(0).value()).path("token_ids").size(), id);
                }
            }
            assertTrue(third.log.indexOf("suspected poison, dead-lettered without running it") >= 0, tail(third));
            assertTrue(third.process.isAlive());
            assertTrue(third.stop(), "a graceful stop");
        } finally {
            third.process.destroyForcibly();
        }
        try (var counts = Files.newDirectoryStream(data.resolve("crashes"), "*.crashes.json")) {
            int files = 0;
            for (Path f : counts) {
                files++;
                assertFalse(Files.readString(f).contains("/"), "no crash count is left once the records are answered: " + f);
            }
            assertEquals(1, files, "one node, one journal");
        }
    }

    /** The answers (read_committed) by request id: a result's id, a dead letter's by the record it holds. */
    static Map<String, List<ConsumerRecord<String, byte[]>>> read(int kafkaPort, int expected, long timeoutMs) throws Exception {
        Map<String, Object> c = new HashMap<>();
        c.put("bootstrap.servers", "localhost:" + kafkaPort);
        c.put("group.id", "poison-it");
        c.put("isolation.level", "read_committed");
        Map<String, List<ConsumerRecord<String, byte[]>>> byId = new HashMap<>();
        try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (String t : List.of("blip2.captions", "blip2.requests.DLT")) {
                consumer.partitionsFor(t).forEach(p -> tps.add(new TopicPartition(t, p.partition())));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long end = System.currentTimeMillis() + timeoutMs;
            long quietUntil = Long.MAX_VALUE;
            while (System.currentTimeMillis() < Math.min(end, quietUntil)) {
                for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(consumer.poll(Duration.ofMillis(200)))) {
                    JsonNode v = JSON.readTree(r.value());
                    String id = v.path("id").asText();
                    byId.computeIfAbsent(id, k -> new ArrayList<>()).add(r);
                }
                if (byId.size() >= expected && quietUntil == Long.MAX_VALUE) {
                    quietUntil = System.currentTimeMillis() + 2000; // and nothing more after that
                }
            }
        }
        return byId;
    }

    static String tail(ServeProcess p) {
        String l = p.log.toString();
        return l.substring(Math.max(0, l.length() - 4000));
    }
}
