package io.blip2stream.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 9, item 1, Kafka's exactly-once system test in small: a broker (this process), three service processes in
 * one cluster, 500 caption requests of 10 to 30 tokens, and one service process killed with {@code kill -9} three
 * times during the run (each time after more answers are in) and started again. A {@code read_committed} consumer
 * of the output topics must see exactly one result per request id: none lost, none twice.
 *
 * <p>The long variant ({@code -Dblip2.eos.requests=N}, the {@code long-tests} profile) sends more.
 */
class ExactlyOnceIT {
    static final ObjectMapper JSON = new ObjectMapper();
    static final int REQUESTS = Integer.getInteger("blip2.eos.requests", 500);
    static final int KILLS = Integer.getInteger("blip2.eos.kills", 3);

    @TempDir
    Path tmp;

    @Test
    void killedThreeTimesEveryRequestIsAnsweredExactlyOnce() throws Exception {
        try (EmbeddedKafka broker = new EmbeddedKafka(tmp.resolve("kafka"), 0, 0).start()) {
            Path conf = Files.writeString(tmp.resolve("eos.yaml"), String.join("\n",
                    "kafka:",
                    "  partitions: 6",
                    "  consumer:",
                    "    session.timeout.ms: '6000'",
                    "    heartbeat.interval.ms: '1000'",
                    "inference:",
                    "  step_delay_ms: 40",
                    "cluster:",
                    "  failure_detection_s: 6",
                    ""));
            String cluster = "eos-" + UUID.randomUUID();
            int[] clusterPorts = {ServeIT.freePort(), ServeIT.freePort(), ServeIT.freePort()};
            ServeProcess[] nodes = new ServeProcess[3];
            List<ServeProcess> all = new ArrayList<>();
            try {
                for (int i = 0; i < 3; i++) {
                    nodes[i] = node(i, conf, broker, cluster, clusterPorts);
                    all.add(nodes[i]);
                }
                for (ServeProcess n : nodes) {
                    assertTrue(n.awaitReady(180), "a node starts:\n" + n.log);
                }
                String png = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));

                Map<String, Integer> committed = new ConcurrentHashMap<>();   // what read_committed sees, per id
                Map<String, Integer> uncommitted = new ConcurrentHashMap<>(); // what read_uncommitted sees
                Map<String, String> byNode = new ConcurrentHashMap<>();
                AtomicBoolean reading = new AtomicBoolean(true);
                Thread readCommitted = reader(broker, "read_committed", committed, byNode, reading);
                Thread readUncommitted = reader(broker, "read_uncommitted", uncommitted, new ConcurrentHashMap<>(), reading);

                // a steady load: 15 requests a second
                Set<String> ids = new LinkedHashSet<>();
                AtomicInteger sent = new AtomicInteger();
                Thread producer = new Thread(() -> {
                    try (KafkaProducer<String, byte[]> p = new KafkaProducer<>(Map.of("bootstrap.servers", broker.bootstrapServers(),
                            "acks", "all"), new StringSerializer(), new ByteArraySerializer())) {
                        for (int i = 0; i < REQUESTS; i++) {
                            String id = "eos-" + i;
                            ObjectNode o = JSON.createObjectNode().put("id", id).put("task", "caption").put("image", png);
                            int tokens = 10 + (i * 7) % 21;
                            o.putObject("params").put("max_new_tokens", tokens).put("min_new_tokens", tokens);
                            p.send(new ProducerRecord<>("blip2.requests", id, JSON.writeValueAsBytes(o))).get();
                            sent.incrementAndGet();
                            Thread.sleep(66);
                        }
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
                for (int i = 0; i < REQUESTS; i++) {
                    ids.add("eos-" + i);
                }
                producer.start();

                // three kills, each once more answers are in, each node in turn, each started again
                List<String> kills = new ArrayList<>();
                for (int k = 0; k < KILLS; k++) {
                    int threshold = (k + 1) * REQUESTS / (KILLS + 2);
                    long end = System.currentTimeMillis() + 240_000;
                    while (committed.size() < threshold && System.currentTimeMillis() < end) {
                        Thread.sleep(50);
                    }
                    int v = k % 3;
                    ServeProcess victim = nodes[v];
                    new ProcessBuilder("kill", "-KILL", String.valueOf(victim.process.pid())).start().waitFor();
                    assertTrue(victim.process.waitFor(10, TimeUnit.SECONDS));
                    kills.add("node-" + v + " after " + committed.size() + " answers, " + sent.get() + " sent");
                    System.out.println("EOS killed node-" + v + " (SIGKILL) after " + committed.size() + " answers, " + sent.get() + " sent");
                    Thread.sleep(2000);
                    nodes[v] = node(v, conf, broker, cluster, clusterPorts);
                    all.add(nodes[v]);
                    assertTrue(nodes[v].awaitReady(180), "node-" + v + " starts again:\n" + nodes[v].log);
                }
                producer.join(180_000);
                assertEquals(REQUESTS, sent.get());

                long end = System.currentTimeMillis() + 300_000;
                while (!committed.keySet().containsAll(ids) && System.currentTimeMillis() < end) {
                    Thread.sleep(200);
                }
                Thread.sleep(8000); // then watch a while for duplicates
                reading.set(false);
                readCommitted.join(10_000);
                readUncommitted.join(10_000);

                Set<String> lost = new LinkedHashSet<>(ids);
                lost.removeAll(committed.keySet());
                Map<String, Integer> duplicated = new TreeMap<>();
                committed.forEach((id, n) -> {
                    if (n > 1) {
                        duplicated.put(id, n);
                    }
                });
                long uncommittedExtra = uncommitted.values().stream().mapToInt(n -> n - 1).filter(n -> n > 0).sum();
                Map<String, Integer> perNode = new TreeMap<>();
                byNode.values().forEach(n -> perNode.merge(n, 1, Integer::sum));
                long takeovers = all.stream().mapToLong(n -> n.log.toString().split("committed offset", -1).length - 1).sum();
                System.out.println("EOS " + REQUESTS + " sent, " + committed.size() + " delivered (read_committed), " + lost.size()
                        + " lost, " + duplicated.size() + " duplicated; kills: " + kills + "; answered by " + perNode
                        + "; a read_uncommitted consumer saw " + uncommittedExtra + " extra records (aborted transactions); "
                        + takeovers + " partition assignments read a committed offset");
                if (!lost.isEmpty() || !duplicated.isEmpty()) {
                    for (ServeProcess n : all) {
                        String[] lines = n.log.toString().split("\n");
                        System.out.println("---- a node's last lines");
                        for (int i = Math.max(0, lines.length - 60); i < lines.length; i++) {
                            System.out.println(lines[i]);
                        }
                    }
                }
                assertEquals(Set.of(), lost, "no request lost");
                assertEquals(Map.of(), duplicated, "exactly one result per request id");
                assertEquals(KILLS, kills.size());
            } finally {
                for (ServeProcess n : nodes) {
                    if (n != null && n.process.isAlive()) {
                        n.stop();
                    }
                }
            }
        }
    }

    /** Node {@code i}: its cluster port, the other two as members, the broker of this test. */
    private ServeProcess node(int i, Path conf, EmbeddedKafka broker, String cluster, int[] clusterPorts) throws Exception {
        List<String> others = new ArrayList<>();
        for (int j = 0; j < clusterPorts.length; j++) {
            if (j != i) {
                others.add("127.0.0.1:" + clusterPorts[j]);
            }
        }
        Map<String, String> env = new HashMap<>();
        env.put("BLIP2_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers());
        env.put("BLIP2_CLUSTER_NAME", cluster);
        env.put("BLIP2_CLUSTER_PORT", String.valueOf(clusterPorts[i]));
        env.put("BLIP2_CLUSTER_MEMBERS", String.join(",", others));
        env.put("BLIP2_NODE_ID", "node-" + i);
        env.put("BLIP2_RETRIEVAL_MODEL", Fixtures.model("blip2-itm-tiny").toString());
        return new ServeProcess(Files.createDirectories(tmp.resolve("node-" + i + "-" + UUID.randomUUID())),
                List.of("-Xmx768m"), List.of("--config", conf.toString()), env);
    }

    /** Counts the results on the captions topic and the DLT, per request id, at one isolation level. */
    private static Thread reader(EmbeddedKafka broker, String isolation, Map<String, Integer> counts, Map<String, String> byNode,
                                 AtomicBoolean reading) {
        Thread t = new Thread(() -> {
            Map<String, Object> c = new HashMap<>();
            c.put("bootstrap.servers", broker.bootstrapServers());
            c.put("group.id", "eos-check-" + UUID.randomUUID());
            c.put("isolation.level", isolation);
            try (KafkaConsumer<String, byte[]> k = new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> tps = new ArrayList<>();
                long end = System.currentTimeMillis() + 120_000;
                for (String topic : List.of("blip2.captions", "blip2.requests.DLT")) {
                    while (k.partitionsFor(topic).isEmpty() && System.currentTimeMillis() < end) {
                        Thread.sleep(200); // created by the first node
                    }
                    k.partitionsFor(topic).forEach(p -> tps.add(new TopicPartition(topic, p.partition())));
                }
                k.assign(tps);
                k.seekToBeginning(tps);
                while (reading.get()) {
                    for (ConsumerRecord<String, byte[]> r : k.poll(Duration.ofMillis(200))) {
                        counts.merge(r.key(), 1, Integer::sum);
                        if (r.topic().equals("blip2.captions")) {
                            JsonNode n = JSON.readTree(r.value());
                            byNode.putIfAbsent(r.key(), n.path("node").asText());
                        } else {
                            byNode.putIfAbsent(r.key(), "DLT");
                        }
                    }
                }
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        t.setDaemon(true);
        t.start();
        return t;
    }
}
