package io.blip2stream.e2e;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.kafka.EmbeddedKafka;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
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
@Tag("e2e")
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
            try (ClusterNodes cluster = new ClusterNodes(tmp, conf, broker, 3).startAll()) {
                ServeProcess[] nodes = cluster.nodes;
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
                    cluster.start(v);
                    assertTrue(cluster.awaitReady(v, 180), "node-" + v + " starts again:\n" + nodes[v].log);
                }
                producer.join(180_000);
                assertEquals(REQUESTS, sent.get());

                ClusterNodes.awaitAnswers(committed, ids, 300_000, 8000);
                reading.set(false);
                readCommitted.join(10_000);
                readUncommitted.join(10_000);

                Set<String> lost = ClusterNodes.lost(ids, committed);
                Map<String, Integer> duplicated = ClusterNodes.duplicated(committed);
                long uncommittedExtra = uncommitted.values().stream().mapToInt(n -> n - 1).filter(n -> n > 0).sum();
                Map<String, Integer> perNode = new TreeMap<>();
                byNode.values().forEach(n -> perNode.merge(n, 1, Integer::sum));
                long takeovers = cluster.all.stream().mapToLong(n -> n.log.toString().split("committed offset", -1).length - 1).sum();
                System.out.println("EOS " + REQUESTS + " sent, " + committed.size() + " delivered (read_committed), " + lost.size()
                        + " lost, " + duplicated.size() + " duplicated; kills: " + kills + "; answered by " + perNode
                        + "; a read_uncommitted consumer saw " + uncommittedExtra + " extra records (aborted transactions); "
                        + takeovers + " partition assignments read a committed offset");
                if (!lost.isEmpty() || !duplicated.isEmpty()) {
                    cluster.printLastLines(60);
                }
                assertEquals(Set.of(), lost, "no request lost");
                assertEquals(Map.of(), duplicated, "exactly one result per request id");
                assertEquals(KILLS, kills.size());
            }
        }
    }

    /** Counts the results on the captions topic and the DLT, per request id, at one isolation level. */
    private static Thread reader(EmbeddedKafka broker, String isolation, Map<String, Integer> counts, Map<String, String> byNode,
                                 AtomicBoolean reading) {
        return ClusterNodes.outputReader(broker, isolation, reading, r -> {
            counts.merge(r.key(), 1, Integer::sum);
            if (r.topic().equals("blip2.captions")) {
                try {
                    byNode.putIfAbsent(r.key(), JSON.readTree(r.value()).path("node").asText());
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            } else {
                byNode.putIfAbsent(r.key(), "DLT");
            }
        });
    }
}
