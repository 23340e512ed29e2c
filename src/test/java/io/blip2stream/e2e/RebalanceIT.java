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
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 9, item 2: a node joins or leaves every 15 s for 2 minutes under a steady load. Three service processes
 * and a broker (this process); caption requests at a fixed rate; after a steady phase, the third node leaves
 * (SIGTERM, as Kubernetes stops a pod) and joins again (a fresh process) in turn, one event every 15 s. A join is
 * when the fresh process is in the consumer group (it says ready then): it is started as the node before it leaves,
 * since its start takes 15-20 s here, and it serves 15 s before it leaves in turn. (Started at the join's time
 * instead, it was still starting when told to leave, so the test saw no joins.) A
 * {@code read_committed} consumer of the outputs must see every request answered exactly once, and the 99th
 * percentile of latency (from the request's send to its answer's arrival) of the requests sent during the churn
 * must be within 2x that of the steady phase.
 *
 * <p>The long variant ({@code -Dblip2.rebalance.events=N}, the {@code long-tests} profile) churns longer.
 */
@Tag("e2e")
class RebalanceIT {
    static final ObjectMapper JSON = new ObjectMapper();
    static final int EVENTS = Integer.getInteger("blip2.rebalance.events", 8);
    static final long EVENT_MS = 15_000;
    static final long WARM_UP_MS = 20_000;  // three fresh JVMs compiling on 2 cores: not counted
    static final long STEADY_MS = 30_000;
    static final long RATE_PERIOD_MS = 200; // 5 requests a second, well under what three nodes (or two) take
    // 40 decode steps of 25 ms: about 1.1 s a request end to end, still short of what BLIP-2 takes on a CPU; a
    // handover costs about 1 s (the group's rebalance, the new owner's producer and offsets), which at 0.6 s requests
    // put the p99 ratio between 1.4 and 2.4 from run to run
    static final int TOKENS = 40;

    @TempDir
    Path tmp;

    @Test
    void aNodeJoiningOrLeavingEvery15sLosesNothingAndKeepsP99Within2xOfSteadyState() throws Exception {
        try (EmbeddedKafka broker = new EmbeddedKafka(tmp.resolve("kafka"), 0, 0).start()) {
            Path conf = Files.writeString(tmp.resolve("rebalance.yaml"), String.join("\n",
                    "kafka:",
                    "  partitions: 6",
                    "inference:",
                    "  step_delay_ms: 25",
                    ""));
            try (ClusterNodes cluster = new ClusterNodes(tmp, conf, broker, 3).startAll()) {
                ServeProcess[] nodes = cluster.nodes;
                String png = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));

                Map<String, Long> sentAt = new ConcurrentHashMap<>();     // id -> System.nanoTime() at send
                Map<String, Long> arrivedAt = new ConcurrentHashMap<>();  // id -> first arrival
                Map<String, Integer> count = new ConcurrentHashMap<>();   // id -> results seen (read_committed)
                AtomicBoolean reading = new AtomicBoolean(true);
                Thread reader = reader(broker, count, arrivedAt, reading);
                AtomicBoolean sending = new AtomicBoolean(true);
                List<String> order = java.util.Collections.synchronizedList(new ArrayList<>());
                Thread producer = new Thread(() -> {
                    try (KafkaProducer<String, byte[]> p = new KafkaProducer<>(Map.of("bootstrap.servers", broker.bootstrapServers(),
                            "acks", "all", "linger.ms", "0"), new StringSerializer(), new ByteArraySerializer())) {
                        long next = System.nanoTime();
                        for (int i = 0; sending.get(); i++) {
                            String id = "rb-" + i;
                            ObjectNode o = JSON.createObjectNode().put("id", id).put("task", "caption").put("image", png);
                            o.putObject("params").put("max_new_tokens", TOKENS).put("min_new_tokens", TOKENS);
                            byte[] value = JSON.writeValueAsBytes(o);
                            sentAt.put(id, System.nanoTime());
                            order.add(id);
                            p.send(new ProducerRecord<>("blip2.requests", id, value));
                            next += RATE_PERIOD_MS * 1_000_000L;
                            long wait = next - System.nanoTime();
                            if (wait > 0) {
                                Thread.sleep(wait / 1_000_000L, (int) (wait % 1_000_000L));
                            }
                        }
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
                producer.start();

                // the steady phase: three nodes; a warm-up first, which does not count
                Thread.sleep(WARM_UP_MS);
                int steadyFrom = order.size();
                Thread.sleep(STEADY_MS);
                int churnFrom = order.size();
                List<String> events = new ArrayList<>();
                long leftAt = 0;
                for (int e = 0; e < EVENTS; e++) {
                    long at = System.currentTimeMillis();
                    if (e % 2 == 0) {
                        assertTrue(nodes[2].stop(), "node-2 stops within 60 s:\n" + nodes[2].log);
                        leftAt = System.currentTimeMillis();
                        events.add("left after " + (leftAt - at) + " ms");
                        // the next node-2 starts at once: a JVM, the cluster and the model take 15-20 s on 2 busy
                        // cores, so it joins the group at about the next event's time, not 15-20 s after it
                        cluster.start(2);
                    } else {
                        // a join is when the node is in the group with its partitions open (it says ready then); it
                        // serves from there until the next event, 15 s later
                        assertTrue(cluster.awaitReady(2, 120), "node-2 starts again:\n" + nodes[2].log);
                        at = System.currentTimeMillis();
                        events.add("joined " + (at - leftAt) + " ms after the leave");
                    }
                    System.out.println("REBALANCE event " + e + ": node-2 " + events.get(e) + "; " + count.size() + " answered");
                    long rest = at + EVENT_MS - System.currentTimeMillis();
                    if (rest > 0) {
                        Thread.sleep(rest);
                    }
                }
                int churnTo = order.size();
                sending.set(false);
                producer.join(10_000);

                Set<String> ids = new LinkedHashSet<>(order);
                ClusterNodes.awaitAnswers(count, ids, 180_000, 5000);
                reading.set(false);
                reader.join(10_000);

                Set<String> lost = ClusterNodes.lost(ids, count);
                Map<String, Integer> duplicated = ClusterNodes.duplicated(count);
                List<String> ordered = new ArrayList<>(order);
                double[] steady = latencies(ordered.subList(steadyFrom, churnFrom), sentAt, arrivedAt);
                double[] churn = latencies(ordered.subList(churnFrom, churnTo), sentAt, arrivedAt);
                System.out.printf("REBALANCE %d sent, %d delivered (read_committed), %d lost, %d duplicated; events %s%n",
                        ids.size(), count.size(), lost.size(), duplicated.size(), events);
                System.out.printf("REBALANCE steady (%d requests): p50 %.0f ms, p99 %.0f ms, max %.0f ms; churn (%d requests): "
                                + "p50 %.0f ms, p99 %.0f ms, max %.0f ms; p99 ratio %.2f%n",
                        steady.length, pct(steady, 50), pct(steady, 99), pct(steady, 100),
                        churn.length, pct(churn, 50), pct(churn, 99), pct(churn, 100), pct(churn, 99) / pct(steady, 99));
                // the slowest of the churn, by when they were sent (an event every 15 s from 0)
                long churnStart = sentAt.get(ordered.get(churnFrom));
                System.out.println("REBALANCE slowest during the churn (sent at s after its start: ms): " + ordered.subList(churnFrom, churnTo)
                        .stream().filter(arrivedAt::containsKey)
                        .sorted(java.util.Comparator.comparingLong(id -> -(arrivedAt.get(id) - sentAt.get(id)))).limit(15)
                        .map(id -> String.format("%.1f: %d", (sentAt.get(id) - churnStart) / 1e9, (arrivedAt.get(id) - sentAt.get(id)) / 1_000_000))
                        .toList());
                if (!lost.isEmpty() || !duplicated.isEmpty() || pct(churn, 99) > 2 * pct(steady, 99)) {
                    cluster.printLastLines(60);
                }
                assertEquals(Set.of(), lost, "no request lost");
                assertEquals(Map.of(), duplicated, "exactly one result per request id");
                assertTrue(pct(churn, 99) <= 2 * pct(steady, 99), String.format(
                        "p99 during the churn (%.0f ms) within 2x that of the steady state (%.0f ms)", pct(churn, 99), pct(steady, 99)));
            }
        }
    }

    /** Milliseconds from send to first arrival, sorted. */
    private static double[] latencies(List<String> ids, Map<String, Long> sentAt, Map<String, Long> arrivedAt) {
        return ids.stream().filter(arrivedAt::containsKey)
                .mapToDouble(id -> (arrivedAt.get(id) - sentAt.get(id)) / 1e6).sorted().toArray();
    }

    /** The nearest-rank percentile of sorted values. */
    private static double pct(double[] sorted, double p) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        int rank = (int) Math.ceil(p / 100.0 * sorted.length);
        return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
        }

    /** Records, per request id, how many results a read_committed consumer sees and when the first arrived. */
    private static Thread reader(EmbeddedKafka broker, Map<String, Integer> counts, Map<String, Long> arrivedAt, AtomicBoolean reading) {
        return ClusterNodes.outputReader(broker, "read_committed", reading, r -> {
            long now = System.nanoTime();
            counts.merge(r.key(), 1, Integer::sum);
            arrivedAt.putIfAbsent(r.key(), now);
        });
    }
}
