package io.blip2stream.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.TestPorts;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.kafka.EmbeddedKafka;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Three service nodes, each the packaged jar in its own process, in one Hazelcast cluster on loopback, with one
 * Kafka broker: requests spread over the nodes by partition; a follower on one node streams a request generated
 * on another; a second question about an image on another node skips the vision encoder; GET on any node; and a
 * node killed with SIGKILL during generation leaves every accepted request with exactly one result.
 */
@Tag("e2e")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ClusterIT {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    EmbeddedKafka broker;
    final List<Node> nodes = new ArrayList<>();
    KafkaProducer<String, byte[]> producer;
    final HttpClient http = HttpClient.newHttpClient();
    String png;

    /** One service process and what it printed. */
    static final class Node {
        final String name;
        final int httpPort;
        final int clusterPort;
        Process process;
        final StringBuffer log = new StringBuffer();

        Node(String name, int httpPort, int clusterPort) {
            this.name = name;
            this.httpPort = httpPort;
            this.clusterPort = clusterPort;
        }

        /** The partitions of the requests topic this node was last assigned. */
        int assignedPartitions() {
            Matcher m = Pattern.compile("owns \\[(.*)]").matcher(log);
            String last = null;
            while (m.find()) {
                last = m.group(1);
            }
            return last == null || last.isBlank() ? 0 : last.split("TopicPartition").length - 1;
        }
    }

    @BeforeAll
    void start() throws Exception {
        broker = new EmbeddedKafka(tmp.resolve("kafka"), 0, 0).start();
        png = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));
        Path conf = Files.writeString(tmp.resolve("cluster.yaml"), String.join("\n",
                "kafka:",
                "  consumer:",
                "    session.timeout.ms: '6000'",
                "    heartbeat.interval.ms: '1000'",
                "inference:",
                "  step_delay_ms: 25",
                "cluster:",
                "  failure_detection_s: 6",
                ""));
        String cluster = "it-" + UUID.randomUUID();
        for (int i = 0; i < 3; i++) {
            nodes.add(new Node("node-" + i, TestPorts.free(), TestPorts.free()));
        }
        for (Node n : nodes) {
            List<String> others = new ArrayList<>();
            for (Node o : nodes) {
                if (o != n) {
                    others.add("127.0.0.1:" + o.clusterPort);
                }
            }
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g",
                    "-jar", System.getProperty("blip2.jar", "target/blip2-stream.jar"), "serve", "--config", conf.toString())
                    .redirectErrorStream(true);
            Map<String, String> env = pb.environment();
            env.put("BLIP2_MODEL", Fixtures.model("blip2-opt-tiny").toString());
            env.put("BLIP2_RETRIEVAL_MODEL", Fixtures.model("blip2-itm-tiny").toString());
            env.put("BLIP2_DATA_DIR", tmp.resolve(n.name).toString());
            env.put("BLIP2_HTTP_PORT", String.valueOf(n.httpPort));
            env.put("BLIP2_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers());
            env.put("BLIP2_CLUSTER_NAME", cluster);
            env.put("BLIP2_CLUSTER_PORT", String.valueOf(n.clusterPort));
            env.put("BLIP2_CLUSTER_MEMBERS", String.join(",", others));
            env.put("BLIP2_CLUSTER_KEY_FILE", ClusterNodes.keyFile(tmp).toString());
            env.put("BLIP2_CLUSTER_TLS_DIR", io.blip2stream.TestCerts.node(nodes.indexOf(n) + 1).toString()); // the event bus's mutual TLS
            env.put("BLIP2_NODE_ID", n.name);
            n.process = pb.start();
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(n.process.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        n.log.append(line).append('\n');
                    }
                } catch (IOException e) {
                    // gone
                }
            });
            t.setDaemon(true);
            t.start();
        }
        long end = System.currentTimeMillis() + 180_000;
        for (Node n : nodes) {
            while (!n.log.toString().contains("Blip2Service - ready") && System.currentTimeMillis() < end) {
                Thread.sleep(200);
            }
            assertTrue(n.log.toString().contains("Blip2Service - ready"), n.name + " starts:\n" + n.log);
            assertTrue(n.log.toString().contains("the event bus speaks mutual TLS as CN=node-"),
                    n.name + " talks over mutual TLS");
        }
        // every node sees the three members, and each consumer owns one of the three partitions
        while (System.currentTimeMillis() < end && !nodes.stream().allMatch(n -> n.assignedPartitions() == 1)) {
            Thread.sleep(200);
        }
        for (Node n : nodes) {
            assertEquals(1, n.assignedPartitions(), n.name + " owns one partition:\n" + n.log);
        }
        for (Node n : nodes) {
            Matcher m = Pattern.compile("joined cluster '[^']*' in (\\d+) ms: (\\d+) member").matcher(n.log);
            assertTrue(m.find());
            System.out.println("CLUSTER " + n.name + " joined in " + m.group(1) + " ms, seeing " + m.group(2) + " member(s)");
        }
        assertTrue(nodes.get(2).log.toString().contains(": 3 member(s)") || nodes.get(1).log.toString().contains(": 3 member(s)")
                || nodes.get(0).log.toString().contains(": 3 member(s)"), "the three formed one cluster");
        producer = new KafkaProducer<>(Map.of("bootstrap.servers", broker.bootstrapServers(), "acks", "all"),
                new StringSerializer(), new ByteArraySerializer());
    }

    @AfterAll
    void stop() throws Exception {
        if (producer != null) {
            producer.close();
        }
        for (Node n : nodes) {
            if (n.process != null && n.process.isAlive()) {
                new ProcessBuilder("kill", "-TERM", String.valueOf(n.process.pid())).start().waitFor();
            }
        }
        for (Node n : nodes) {
            if (n.process != null && !n.process.waitFor(60, TimeUnit.SECONDS)) {
                n.process.destroyForcibly();
            }
        }
        if (broker != null) {
            broker.close();
        }
    }

    byte[] caption(String id, int tokens) throws Exception {
        ObjectNode o = JSON.createObjectNode().put("id", id).put("task", "caption").put("image", png);
        o.putObject("params").put("max_new_tokens", tokens).put("min_new_tokens", tokens);
        return JSON.writeValueAsBytes(o);
    }

    KafkaConsumer<String, byte[]> consumer(String... topics) {
        Map<String, Object> c = new HashMap<>();
        c.put("bootstrap.servers", broker.bootstrapServers());
        c.put("group.id", "it-" + UUID.randomUUID());
        // answers are committed in Kafka transactions (kafka.exactly_once, the default): a killed node's open
        // transaction is aborted, and only a read_committed reader skips what it had written
        c.put("isolation.level", "read_committed");
        KafkaConsumer<String, byte[]> k = new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> tps = new ArrayList<>();
        for (String t : topics) {
            k.partitionsFor(t).forEach(p -> tps.add(new TopicPartition(t, p.partition())));
        }
        k.assign(tps);
        k.seekToBeginning(tps);
        return k;
    }

    Map<String, List<JsonNode>> results(KafkaConsumer<String, byte[]> c, Set<String> ids, long timeoutMs, long settleMs) throws Exception {
        return results(c, ids, ids, timeoutMs, settleMs);
    }

    /** Collects results of {@code ids} until those of {@code waitFor} are in, then a while more (duplicates). */
    Map<String, List<JsonNode>> results(KafkaConsumer<String, byte[]> c, Set<String> ids, Set<String> waitFor, long timeoutMs,
                                        long settleMs) throws Exception {
        Map<String, List<JsonNode>> out = new HashMap<>();
        long end = System.currentTimeMillis() + timeoutMs;
        long settleUntil = Long.MAX_VALUE;
        while (System.currentTimeMillis() < Math.min(end, settleUntil)) {
            for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(c.poll(Duration.ofMillis(200)))) {
                if (ids.contains(r.key())) {
                    out.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(JSON.readTree(r.value()));
                }
            }
            if (settleUntil == Long.MAX_VALUE && out.keySet().containsAll(waitFor)) {
                settleUntil = System.currentTimeMillis() + settleMs; // then watch a while for duplicates
            }
        }
        return out;
    }

    JsonNode post(Node n, String path, ObjectNode body) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + n.httpPort + path))
                .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString())).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body());
    }

    @Test
    @Order(1)
    void requestsSpreadOverTheNodesByPartition() throws Exception {
        Set<String> ids = new HashSet<>();
        for (int i = 0; i < 30; i++) {
            String id = "spread-" + i;
            ids.add(id);
            producer.send(new ProducerRecord<>("blip2.requests", id, caption(id, 3)));
        }
        producer.flush();
        try (KafkaConsumer<String, byte[]> c = consumer("blip2.captions")) {
            Map<String, List<JsonNode>> got = results(c, ids, 120_000, 500);
            assertEquals(ids, got.keySet());
            Set<String> byNode = new HashSet<>();
            got.values().forEach(l -> byNode.add(l.get(0).get("node").asText()));
            assertEquals(Set.of("node-0", "node-1", "node-2"), byNode, "every node took its partition's share");
        }
        // any node answers GET for a request another node generated
        for (Node n : nodes) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + n.httpPort
                    + "/v1/requests/spread-7")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), n.name + ": " + r.body());
            assertEquals("done", JSON.readTree(r.body()).get("status").asText());
        }
    }

    @Test
    @Order(2)
    void aFollowerOnOneNodeStreamsARequestGeneratedOnAnother() throws Exception {
        String id = "followed-" + UUID.randomUUID();
        Map<String, List<JsonNode>> frames = new HashMap<>();
        Map<String, CompletableFuture<Void>> done = new HashMap<>();
        List<WebSocket> sockets = new ArrayList<>();
        for (Node n : nodes) { // follow on every node: at least two are not the one generating
            List<JsonNode> mine = new CopyOnWriteArrayList<>();
            CompletableFuture<Void> finished = new CompletableFuture<>();
            frames.put(n.name, mine);
            done.put(n.name, finished);
            WebSocket ws = http.newWebSocketBuilder().buildAsync(URI.create("ws://127.0.0.1:" + n.httpPort + "/v1/stream"),
                    new io.blip2stream.service.JsonFrameListener(f -> {
                        mine.add(f);
                        if (!f.get("type").asText().equals("token")) {
                            finished.complete(null);
                        }
                    }, finished::completeExceptionally)).get(10, TimeUnit.SECONDS);
            ws.sendText("{\"type\":\"follow\",\"id\":\"" + id + "\"}", true).get(5, TimeUnit.SECONDS);
            sockets.add(ws);
        }
        producer.send(new ProducerRecord<>("blip2.requests", id, caption(id, 40))).get();
        for (CompletableFuture<Void> f : done.values()) {
            f.get(60, TimeUnit.SECONDS);
        }
        sockets.forEach(w -> w.sendClose(WebSocket.NORMAL_CLOSURE, "bye"));
        String generatedOn = null;
        for (Node n : nodes) {
            List<JsonNode> f = frames.get(n.name);
            JsonNode last = f.get(f.size() - 1);
            assertEquals("done", last.get("type").asText(), n.name + ": " + f);
            generatedOn = last.get("node").asText();
            assertEquals(41, f.size(), n.name + " got every token, then done");
            for (int i = 0; i < 40; i++) {
                assertEquals(i, f.get(i).get("index").asInt(), n.name + " in order");
                assertEquals(last.get("token_ids").get(i), f.get(i).get("token_id"));
            }
        }
        System.out.println("CLUSTER request " + id + " generated on " + generatedOn + ", streamed to followers on all three nodes");
    }

    @Test
    @Order(3)
    void aSecondQuestionOnAnotherNodeSkipsTheVisionEncoder() throws Exception {
        String image = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 1));
        String fresh = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 2));
        ObjectNode q1 = JSON.createObjectNode().put("image", image).put("question", "what color is the circle?");
        q1.putObject("params").put("max_new_tokens", 5);
        JsonNode first = post(nodes.get(0), "/v1/ask", q1);
        assertEquals("computed", first.get("timings").get("visual_prompt").asText());
        ObjectNode q2 = JSON.createObjectNode().put("image", image).put("question", "what shape is in the middle?");
        q2.putObject("params").put("max_new_tokens", 5);
        JsonNode second = post(nodes.get(1), "/v1/ask", q2);
        assertEquals("cached", second.get("timings").get("visual_prompt").asText(), "another node reuses the visual prompt");
        assertEquals(0.0, second.get("timings").get("vision_ms").asDouble());
        assertEquals(0.0, second.get("timings").get("qformer_ms").asDouble());
        // the same second question about an image never seen, on the same node: computed
        ObjectNode q3 = JSON.createObjectNode().put("image", fresh).put("question", "what shape is in the middle?");
        q3.putObject("params").put("max_new_tokens", 5);
        JsonNode uncached = post(nodes.get(1), "/v1/ask", q3);
        assertEquals("computed", uncached.get("timings").get("visual_prompt").asText());
        System.out.println("CLUSTER second question: cached total " + second.get("timings").get("total_ms") + " ms (preprocess "
                + second.get("timings").get("preprocess_ms") + "), uncached total " + uncached.get("timings").get("total_ms")
                + " ms (preprocess " + uncached.get("timings").get("preprocess_ms") + ", vision " + uncached.get("timings").get("vision_ms")
                + ", qformer " + uncached.get("timings").get("qformer_ms") + ")");
    }

    @Test
    @Order(4)
    void aNodeKilledDuringGenerationLeavesEveryRequestWithExactlyOneResult() throws Exception {
        Set<String> ids = new HashSet<>();
        for (int i = 0; i < 60; i++) {
            String id = "kill-" + i;
            ids.add(id);
            producer.send(new ProducerRecord<>("blip2.requests", id, caption(id, 20)));
        }
        producer.flush();
        Node victim = nodes.get(2);
        try (KafkaConsumer<String, byte[]> c = consumer("blip2.captions", "blip2.requests.DLT")) {
            // let some answers through, then kill a node in the middle of its work
            Map<String, List<JsonNode>> early = new HashMap<>();
            long end = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < end && early.values().stream().filter(l -> l.get(0).get("node").asText()
                    .equals(victim.name)).count() < 3) {
                for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(c.poll(Duration.ofMillis(100)))) {
                    if (ids.contains(r.key())) {
                        early.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(JSON.readTree(r.value()));
                    }
                }
            }
            // answers leave a node in a burst at the end of a batch; a batch here takes seconds (25 ms a token and a row):
            // half way into the next one the node is generating, which is when this test kills it
            Thread.sleep(1500);
            new ProcessBuilder("kill", "-KILL", String.valueOf(victim.process.pid())).start().waitFor();
            assertTrue(victim.process.waitFor(10, TimeUnit.SECONDS));
            System.out.println("CLUSTER killed " + victim.name + " (SIGKILL) after " + early.size() + " of 60 answers");
            long killedAt = System.currentTimeMillis();
            Set<String> missing = new HashSet<>(ids);
            missing.removeAll(early.keySet());
            Map<String, List<JsonNode>> rest = results(c, ids, missing, 180_000, 8000);
            System.out.println("CLUSTER all answered " + (System.currentTimeMillis() - killedAt - 8000) + " ms after the kill");
            for (Node n : nodes) {
                if (n != victim) {
                    String[] lines = n.log.toString().split("\n");
                    System.out.println("---- " + n.name + " after the kill");
                    for (int i = Math.max(0, lines.length - 40); i < lines.length; i++) {
                        System.out.println(lines[i]);
                    }
                }
            }
            Map<String, Integer> count = new HashMap<>();
            early.forEach((k, v) -> count.merge(k, v.size(), Integer::sum));
            rest.forEach((k, v) -> count.merge(k, v.size(), Integer::sum));
            long duplicated = count.values().stream().filter(n -> n > 1).count();
            long delivered = count.size();
            Set<String> byNode = new HashSet<>();
            rest.values().forEach(l -> byNode.add(l.get(0).get("node").asText()));
            System.out.println("CLUSTER kill test: accepted 60, delivered " + delivered + ", duplicated " + duplicated
                    + ", answered after the kill by " + byNode);
            assertEquals(ids, count.keySet(), "no request lost");
            assertEquals(0, duplicated, "exactly one result per request: " + count);
        }
    }
}
