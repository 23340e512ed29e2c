package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.cli.Main;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.weights.SafetensorsFile;
import io.vertx.ext.web.client.WebClient;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The service end to end with a real in-process broker and the fixture models: requests of every task in both
 * forms give exactly one result each, on the right topic, with the ids and token ids of the command line; bad
 * records go to the DLT with their reason; streaming gives token records; restarting the consumer loses nothing;
 * and no event loop is ever blocked.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KafkaServiceTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String OPT = "blip2-opt-tiny";
    static final String ITM = "blip2-itm-tiny";

    @TempDir
    static Path tmp;
    ServiceHarness harness;

    /** One kind of request: how to send it, and what the command line says it gives. */
    record Template(String task, String fixture, int image, String prompt, String question, List<String> texts, String params,
                    String[] cli) {}

    final List<Template> templates = List.of(
            new Template("caption", OPT, 0, null, null, null, "{\"max_new_tokens\":12}",
                    new String[] {"caption", "--max-new-tokens", "12"}),
            new Template("caption", OPT, 1, "a photo of", null, null, "{\"max_new_tokens\":8,\"num_beams\":3}",
                    new String[] {"caption", "--prompt", "a photo of", "--max-new-tokens", "8", "--num-beams", "3"}),
            new Template("vqa", OPT, 2, null, "what color is the circle?", null, "{\"max_new_tokens\":12}",
                    new String[] {"ask", "--question", "what color is the circle?", "--max-new-tokens", "12"}),
            new Template("vqa", OPT, 0, null, "what is it?", null,
                    "{\"max_new_tokens\":10,\"do_sample\":true,\"top_k\":20,\"temperature\":0.9,\"seed\":7}",
                    new String[] {"ask", "--question", "what is it?", "--max-new-tokens", "10", "--do-sample", "--top-k", "20",
                            "--temperature", "0.9", "--seed", "7"}),
            new Template("match", ITM, 0, null, null, List.of("a red circle on the left", "two cats laying on a couch", "blue"), null,
                    new String[] {"match", "--text", "a red circle on the left", "--text", "two cats laying on a couch", "--text", "blue"}),
            new Template("embed", ITM, 1, null, null, List.of("a blue square at the top"), null,
                    new String[] {"embed", "--text", "a blue square at the top"}));

    final Map<Template, JsonNode> expected = new HashMap<>();

    @BeforeAll
    void start() throws Exception {
        for (Template t : templates) {
            expected.put(t, cli(t));
        }
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("inference.max_batch_wait_ms", "20"));
    }

    @AfterAll
    void stop() {
        if (harness != null) {
            harness.close();
        }
    }

    /** What the command line prints for the template (embed: its tensors, as JSON arrays). */
    JsonNode cli(Template t) throws Exception {
        List<String> args = new ArrayList<>(List.of(t.cli()));
        args.addAll(List.of("--model", Fixtures.model(t.fixture()).toString(), "--image",
                Fixtures.dir(t.fixture()).resolve("image" + t.image() + ".png").toString()));
        if (t.task().equals("embed")) {
            Path out = tmp.resolve("embed-" + t.image() + ".safetensors");
            args.addAll(List.of("--out", out.toString()));
            assertEquals(0, Main.run(args.toArray(String[]::new)));
            ObjectNode o = JSON.createObjectNode();
            try (SafetensorsFile f = SafetensorsFile.open(out)) {
                o.set("image_embeds", matrix(f, "image_embeds"));
                o.set("text_embeds", matrix(f, "text_embeds"));
            }
            return o;
        }
        args.add("--json");
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, Main.run(args.toArray(String[]::new)));
        } finally {
            System.setOut(old);
        }
        return JSON.readTree(buf.toString(StandardCharsets.UTF_8).strip());
    }

    static JsonNode matrix(SafetensorsFile f, String name) {
        SafetensorsFile.Entry e = f.entries().get(name);
        FloatBuffer fb = f.map(e).asFloatBuffer();
        int cols = (int) e.shape()[e.shape().length - 1];
        var a = JSON.createArrayNode();
        while (fb.hasRemaining()) {
            var row = a.addArray();
            for (int i = 0; i < cols; i++) {
                row.add(fb.get());
            }
        }
        return a;
    }

    ProducerRecord<String, byte[]> record(Template t, String id, boolean raw, boolean stream) throws Exception {
        byte[] image = Fixtures.image(t.fixture(), t.image());
        String topic = harness.topics().requests();
        if (raw) {
            ProducerRecord<String, byte[]> r = new ProducerRecord<>(topic, id, image);
            r.headers().add("blip2-id", id.getBytes()); // the key partitions; the id names the request
            r.headers().add("blip2-task", t.task().getBytes());
            if (t.prompt() != null) {
                r.headers().add("blip2-prompt", t.prompt().getBytes());
            }
            if (t.question() != null) {
                r.headers().add("blip2-question", t.question().getBytes());
            }
            if (t.texts() != null) {
                r.headers().add("blip2-texts", JSON.writeValueAsBytes(t.texts()));
            }
            if (t.params() != null) {
                r.headers().add("blip2-params", t.params().getBytes());
            }
            if (stream) {
                r.headers().add("blip2-stream", "true".getBytes());
            }
            r.headers().add("traceparent", ("00-" + "0".repeat(31) + "1-" + "0".repeat(15) + "1-01").getBytes());
            return r;
        }
        ObjectNode o = JSON.createObjectNode();
        o.put("id", id);
        o.put("task", t.task());
        if (!t.task().equals("embed")) {
            o.put("image", Base64.getEncoder().encodeToString(image));
        } else {
            o.put("image", Base64.getEncoder().encodeToString(image));
        }
        if (t.prompt() != null) {
            o.put("prompt", t.prompt());
        }
        if (t.question() != null) {
            o.put("question", t.question());
        }
        if (t.texts() != null) {
            t.texts().forEach(o.putArray("texts")::add);
        }
        if (t.params() != null) {
            o.set("params", JSON.readTree(t.params()));
        }
        if (stream) {
            o.put("stream", true);
        }
        // the JSON id names the request; the key only partitions it (and keys its outputs)
        return new ProducerRecord<>(topic, "key-of-" + id, JSON.writeValueAsBytes(o));
    }

    String topicOf(String task) {
        var t = harness.topics();
        return switch (task) {
            case "caption" -> t.captions();
            case "vqa" -> t.answers();
            case "match" -> t.matches();
            default -> t.embeddings();
        };
    }

    @Test
    void everyTaskInBothFormsAndBadInput() throws Exception {
        Map<String, Template> sent = new HashMap<>();
        Set<String> streamed = new HashSet<>();
        for (int i = 0; i < 50; i++) {
            Template t = templates.get(i % templates.size());
            boolean raw = (i / templates.size()) % 2 == 1;
            boolean stream = t.task().equals("caption") && i % 4 == 0;
            String id = "req-" + i;
            sent.put(id, t);
            if (stream) {
                streamed.add(id);
            }
            harness.send(record(t, id, raw, stream));
        }
        // five bad records between the good ones
        String topic = harness.topics().requests();
        harness.send(new ProducerRecord<>(topic, "bad-json", "{\"task\": \"caption\", ".getBytes()));
        ProducerRecord<String, byte[]> notImage = new ProducerRecord<>(topic, "bad-image", "GIF89a but not really".getBytes());
        notImage.headers().add("blip2-task", "caption".getBytes());
        harness.send(notImage);
        String png = Base64.getEncoder().encodeToString(Fixtures.image(OPT, 0));
        harness.send(new ProducerRecord<>(topic, "bad-task", ("{\"task\":\"paint\",\"image\":\"" + png + "\"}").getBytes()));
        harness.send(new ProducerRecord<>(topic, "bad-beams", ("{\"task\":\"caption\",\"image\":\"" + png
                + "\",\"params\":{\"num_beams\":0}}").getBytes()));
        harness.send(new ProducerRecord<>(topic, "bad-question", ("{\"task\":\"vqa\",\"image\":\"" + png + "\"}").getBytes()));

        var t = harness.topics();
        List<String> outputs = List.of(t.captions(), t.answers(), t.matches(), t.embeddings(), t.deadLetter());
        try (KafkaConsumer<String, byte[]> c = harness.consumer(outputs)) {
            List<ConsumerRecord<String, byte[]>> got = ServiceHarness.readUntil(c, l -> l.size() >= 55, 120_000);
            // a moment more: nothing beyond the 55
            got.addAll(ServiceHarness.readUntil(c, l -> false, 1500));
            List<ConsumerRecord<String, byte[]>> results = got.stream().filter(r -> !r.topic().equals(t.deadLetter())).toList();
            List<ConsumerRecord<String, byte[]>> dead = got.stream().filter(r -> r.topic().equals(t.deadLetter())).toList();
            assertEquals(50, results.size(), "exactly one result per good request");
            assertEquals(5, dead.size(), "one dead letter per bad request");
            Set<String> ids = new HashSet<>();
            for (ConsumerRecord<String, byte[]> r : results) {
                JsonNode o = JSON.readTree(r.value());
                String id = o.get("id").asText();
                boolean raw = Integer.parseInt(id.substring(4)) / templates.size() % 2 == 1;
                assertEquals(raw ? id : "key-of-" + id, r.key(), "keyed as its input was");
                assertTrue(ids.add(id), "one result for " + id);
                Template tpl = sent.get(id);
                assertNotNull(tpl, id);
                assertEquals(topicOf(tpl.task()), r.topic(), id);
                assertEquals(tpl.task(), o.get("task").asText());
                assertEquals("test-node", o.get("node").asText());
                for (String k : List.of("queued_ms", "preprocess_ms", "vision_ms", "prefill_ms", "decode_ms", "total_ms")) {
                    assertTrue(o.get("timings").has(k), k);
                }
                JsonNode want = expected.get(tpl);
                switch (tpl.task()) {
                    case "caption", "vqa" -> {
                        assertEquals(want.get("token_ids"), o.get("token_ids"), id + " token ids as the command line gives");
                        assertEquals(want.get("text"), o.get("text"), id);
                        assertEquals(want.get("finish_reason"), o.get("finish_reason"), id);
                        assertEquals(tpl.fixture(), o.get("model").asText());
                    }
                    case "match" -> {
                        JsonNode wr = want.get("results");
                        for (int k = 0; k < wr.size(); k++) {
                            assertEquals(wr.get(k).get("text"), o.get("results").get(k).get("text"));
                            assertEquals(wr.get(k).get("itm_probability").asDouble(), o.get("results").get(k).get("itm_probability").asDouble(), 1e-6);
                            assertEquals(wr.get(k).get("itc_score").asDouble(), o.get("results").get(k).get("itc_score").asDouble(), 1e-6);
                        }
                    }
                    default -> {
                        assertClose(want.get("image_embeds"), o.get("image_embeds"));
                        assertClose(want.get("text_embeds"), o.get("text_embeds"));
                    }
                }
                Header trace = r.headers().lastHeader("traceparent");
                if (Integer.parseInt(id.substring(4)) / templates.size() % 2 == 1) {
                    assertNotNull(trace, "tracing headers pass through: " + id);
                }
            }
            assertEquals(sent.keySet(), ids);
            Map<String, String> codes = new HashMap<>();
            for (ConsumerRecord<String, byte[]> r : dead) {
                codes.put(r.key(), new String(r.headers().lastHeader("blip2-error-code").value()));
                assertNotNull(r.headers().lastHeader("blip2-error-message"));
                assertEquals(topic, new String(r.headers().lastHeader("blip2-source-topic").value()));
                assertNotNull(r.headers().lastHeader("blip2-source-partition"));
                assertNotNull(r.headers().lastHeader("blip2-source-offset"));
            }
            assertEquals(Map.of("bad-json", "invalid_json", "bad-image", "invalid_image", "bad-task", "unknown_task",
                    "bad-beams", "invalid_params", "bad-question", "missing_question"), codes);
            // streamed requests: token records whose texts make the final text
            try (KafkaConsumer<String, byte[]> tc = harness.consumer(List.of(t.tokens()))) {
                List<ConsumerRecord<String, byte[]>> tokens = ServiceHarness.readUntil(tc, l -> false, 2000);
                for (String id : streamed) {
                    StringBuilder text = new StringBuilder();
                    List<Integer> tokenIds = new ArrayList<>();
                    for (ConsumerRecord<String, byte[]> r : tokens) {
                        if (r.key().equals(id)) {
                            JsonNode o = JSON.readTree(r.value());
                            assertEquals(tokenIds.size(), o.get("index").asInt(), "in order");
                            tokenIds.add(o.get("token_id").asInt());
                            text.append(o.get("text").asText());
                        }
                    }
                    JsonNode want = expected.get(sent.get(id));
                    assertEquals(want.get("token_ids").size(), tokenIds.size(), id);
                    assertTrue(want.get("text").asText().startsWith(text.toString()), id + ": " + text);
                }
                assertTrue(tokens.stream().allMatch(r -> streamed.contains(r.key())), "token records only for requests that asked");
            }
        }
        assertEquals(List.of(), harness.blockedEventLoops, "no event loop was blocked");
    }

    /** The request id a result names. */
    static String idOf(ConsumerRecord<String, byte[]> r) {
        try {
            return JSON.readTree(r.value()).path("id").asText();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void restartingTheConsumerInTheMiddleLosesNothing() throws Exception {
        Template t = templates.get(0);
        Set<String> ids = new HashSet<>();
        for (int i = 0; i < 30; i++) {
            String id = "restart-" + i;
            ids.add(id);
            harness.send(record(t, id, i % 2 == 0, false));
        }
        try (KafkaConsumer<String, byte[]> c = harness.consumer(List.of(harness.topics().captions()))) {
            List<ConsumerRecord<String, byte[]>> got = new ArrayList<>(ServiceHarness.readUntil(c,
                    l -> l.stream().filter(r -> ids.contains(idOf(r))).count() >= 8, 60_000));
            harness.service.stopIngress(); // drains what is in flight, commits, leaves the group
            harness.service.startIngress();
            Set<String> seen = new HashSet<>();
            got.forEach(r -> seen.add(idOf(r)));
            got.addAll(ServiceHarness.readUntil(c, l -> {
                l.forEach(r -> seen.add(idOf(r)));
                return seen.containsAll(ids);
            }, 60_000));
            got.addAll(ServiceHarness.readUntil(c, l -> false, 1500));
            Map<String, Integer> count = new HashMap<>();
            for (ConsumerRecord<String, byte[]> r : got) {
                if (ids.contains(idOf(r))) {
                    count.merge(idOf(r), 1, Integer::sum);
                    assertEquals(expected.get(t).get("token_ids"), JSON.readTree(r.value()).get("token_ids"));
                }
            }
            assertEquals(ids, count.keySet(), "every request answered");
            assertTrue(count.values().stream().allMatch(n -> n == 1), "a graceful restart answers each request once: " + count);
        }
        assertEquals(List.of(), harness.blockedEventLoops, "no event loop was blocked");
    }

    /**
     * The broker fences the producer of a partition this node still owns (what it does to a transaction left open
     * past transaction.timeout.ms, through an outage; here a producer with the same transactional.id does it): the
     * next commit fails for good, and the ingress must not leave the partition unanswered until some later rebalance.
     */
    @Test
    void aPartitionWhoseProducerIsFencedWhileOwnedIsAnsweredAgain() throws Exception {
        Template t = templates.get(0);
        String topic = harness.topics().requests();
        Map<String, Object> rc = new HashMap<>();
        rc.put("bootstrap.servers", harness.service.bootstrapServers());
        rc.put("group.id", "fence-check-" + UUID.randomUUID());
        rc.put("isolation.level", "read_committed");
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(rc, new StringDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            c.partitionsFor(harness.topics().captions()).forEach(p -> tps.add(new TopicPartition(p.topic(), p.partition())));
            c.assign(tps);
            c.seekToBeginning(tps);
            Set<String> first = new HashSet<>();
            for (int i = 0; i < 3; i++) {
                first.add("fence-a-" + i);
                harness.send(new ProducerRecord<>(topic, 0, "fence-a-" + i, record(t, "fence-a-" + i, false, false).value()));
            }
            Map<String, Integer> count = new HashMap<>();
            ServiceHarness.readUntil(c, l -> {
                l.forEach(r -> count.merge(r.key(), 1, Integer::sum));
                l.clear();
                return count.keySet().containsAll(first);
            }, 60_000);
            assertTrue(count.keySet().containsAll(first), "answered before the fence: " + count);

            // fence partition 0's producer: a producer with its transactional.id starts
            String txnId = harness.service.config().kafka().groupId() + "-" + topic + "-0";
            try (KafkaProducer<String, byte[]> fencer = new KafkaProducer<>(Map.of("bootstrap.servers", harness.service.bootstrapServers(),
                    "transactional.id", txnId), new StringSerializer(), new ByteArraySerializer())) {
                fencer.initTransactions();
            }
            Set<String> after = new HashSet<>();
            for (int i = 0; i < 8; i++) {
                after.add("fence-b-" + i);
                harness.send(new ProducerRecord<>(topic, 0, "fence-b-" + i, record(t, "fence-b-" + i, false, false).value()));
            }
            ServiceHarness.readUntil(c, l -> {
                l.forEach(r -> count.merge(r.key(), 1, Integer::sum));
                l.clear();
                return count.keySet().containsAll(after);
            }, 60_000);
            ServiceHarness.readUntil(c, l -> {
                l.forEach(r -> count.merge(r.key(), 1, Integer::sum));
                l.clear();
                return false;
            }, 1500);
            assertTrue(count.keySet().containsAll(after), "every request after the fence answered: " + count);
            assertTrue(count.values().stream().allMatch(n -> n == 1), "each once (read_committed): " + count);
        }
        assertEquals(List.of(), harness.blockedEventLoops, "no event loop was blocked");
    }

    static void assertClose(JsonNode want, JsonNode got) {
        assertEquals(want.size(), got.size());
        for (int i = 0; i < want.size(); i++) {
            for (int j = 0; j < want.get(i).size(); j++) {
                assertEquals(want.get(i).get(j).asDouble(), got.get(i).get(j).asDouble(), 1e-5);
            }
        }
    }

    @Test
    void healthAndMetrics() throws Exception {
        WebClient web = WebClient.create(harness.service.vertx());
        try {
            var live = web.get(harness.service.httpPort(), "127.0.0.1", "/health/live").send().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
            assertEquals(200, live.statusCode());
            var ready = web.get(harness.service.httpPort(), "127.0.0.1", "/health/ready").send().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
            assertEquals(200, ready.statusCode(), ready.bodyAsString());
            var metrics = web.get(harness.service.httpPort(), "127.0.0.1", "/metrics").send().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
            String body = metrics.bodyAsString();
            for (String m : List.of("blip2_queue_depth", "blip2_batch_size", "blip2_stage_latency", "blip2_tokens_generated",
                    "jvm_memory_used_bytes")) {
                assertTrue(body.contains(m), m + " in /metrics");
            }
        } finally {
            web.close();
        }
    }
}
