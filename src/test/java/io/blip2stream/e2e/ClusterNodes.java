package io.blip2stream.e2e;

import io.blip2stream.TestPorts;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.kafka.EmbeddedKafka;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Service processes in one cluster against a broker of the test's own (the tiny fixture models), and a reader of
 * their outputs: what the multi-process reliability tests share.
 */
final class ClusterNodes implements AutoCloseable {
    private final Path tmp;
    private final Path conf;
    private final EmbeddedKafka broker;
    private final String cluster = "it-" + UUID.randomUUID();
    private final int[] clusterPorts;
    /** Outputs read by {@link #outputReader} that do not follow their schema; {@link #close} fails the test on them. */
    static final java.util.Queue<String> SCHEMA_FAILURES = new java.util.concurrent.ConcurrentLinkedQueue<>();
    /** The nodes now, by number. */
    final ServeProcess[] nodes;
    /** Every process started, in order (restarts too). */
    final List<ServeProcess> all = new ArrayList<>();

    /** {@code count} nodes configured by {@code conf}; none started yet. */
    ClusterNodes(Path tmp, Path conf, EmbeddedKafka broker, int count) throws Exception {
        this.tmp = tmp;
        this.conf = conf;
        this.broker = broker;
        this.clusterPorts = new int[count];
        for (int i = 0; i < count; i++) {
            clusterPorts[i] = TestPorts.free();
        }
        this.nodes = new ServeProcess[count];
    }

    /** Starts every node and waits until each is ready. */
    ClusterNodes startAll() throws Exception {
        for (int i = 0; i < nodes.length; i++) {
            start(i);
        }
        for (int i = 0; i < nodes.length; i++) {
            assertTrue(awaitReady(i, 180), "a node starts:\n" + nodes[i].log);
        }
        return this;
    }

    /**
     * Whether node {@code i} says it is ready within {@code seconds}. A node that ended because one of its ports was
     * taken between the check and the bind (another process's port, found free a minute earlier) is started again
     * on fresh ports, twice at most: that race belongs to the test's machine, not to the service.
     */
    boolean awaitReady(int i, long seconds) throws Exception {
        for (int attempt = 0; ; attempt++) {
            if (nodes[i].awaitReady(seconds)) {
                return true;
            }
            if (attempt == 2 || !nodes[i].endedOnATakenPort()) {
                return false;
            }
            System.out.println("node-" + i + " ended on a port taken since the test chose it; starting it on fresh ports");
            clusterPorts[i] = TestPorts.free();
            start(i);
        }
    }

    /** Starts node {@code i} (again), without waiting for it. */
    ServeProcess start(int i) throws Exception {
        nodes[i] = node(tmp, i, conf, broker, cluster, clusterPorts);
        all.add(nodes[i]);
        return nodes[i];
    }

    /** Prints the last lines of every process started. */
    /**
     * Prints each node process's last lines, and writes each one's whole log to {@code target/it-logs/} (kept by CI's
     * clone), to read what led to a failure.
     */
    void printLastLines(int lines) {
        java.nio.file.Path dir = java.nio.file.Path.of("target", "it-logs");
        int i0 = 0;
        for (ServeProcess n : all) {
            try {
                java.nio.file.Files.createDirectories(dir);
                java.nio.file.Files.writeString(dir.resolve(ProcessHandle.current().pid() + "-process-" + i0++ + ".log"), n.log.toString());
            } catch (java.io.IOException e) {
                System.out.println("could not keep the log: " + e);
            }
            String[] l = n.log.toString().split("\n");
            System.out.println("---- a node's last lines (whole log in " + dir.toAbsolutePath() + ")");
            for (int i = Math.max(0, l.length - lines); i < l.length; i++) {
                System.out.println(l[i]);
            }
        }
    }

    @Override
    public void close() throws Exception {
        for (ServeProcess n : nodes) {
            if (n != null && n.process.isAlive()) {
                n.stop();
            }
        }
        if (!SCHEMA_FAILURES.isEmpty()) {
            String all = String.join("\n", SCHEMA_FAILURES);
            SCHEMA_FAILURES.clear();
            throw new AssertionError("outputs that do not follow their schema:\n" + all);
        }
    }

    /** Waits until every id has a result in {@code counts} (or the timeout), then a while more (late duplicates). */
    static void awaitAnswers(Map<String, Integer> counts, java.util.Set<String> ids, long timeoutMs, long settleMs)
            throws InterruptedException {
        long end = System.currentTimeMillis() + timeoutMs;
        while (!counts.keySet().containsAll(ids) && System.currentTimeMillis() < end) {
            Thread.sleep(200);
        }
        Thread.sleep(settleMs);
    }

    /** The ids with no result. */
    static java.util.Set<String> lost(java.util.Set<String> ids, Map<String, Integer> counts) {
        java.util.Set<String> lost = new java.util.LinkedHashSet<>(ids);
        lost.removeAll(counts.keySet());
        return lost;
    }

    /** The ids with more than one result, and how many. */
    static Map<String, Integer> duplicated(Map<String, Integer> counts) {
        Map<String, Integer> out = new java.util.TreeMap<>();
        counts.forEach((id, n) -> {
            if (n > 1) {
                out.put(id, n);
            }
        });
        return out;
    }

    /** The cluster key file of the nodes under {@code tmp} (made once: a random key, as the README says to make one). */
    static synchronized Path keyFile(Path tmp) throws java.io.IOException {
        Path f = tmp.resolve("cluster.key");
        if (!Files.exists(f)) {
            byte[] k = new byte[32];
            new java.security.SecureRandom().nextBytes(k);
            Files.writeString(f, java.util.Base64.getEncoder().encodeToString(k) + "\n");
        }
        return f;
    }

    /** Node {@code i} of a cluster: its cluster port, the others as members, the test's broker; data under {@code tmp}. */
    private static ServeProcess node(Path tmp, int i, Path conf, EmbeddedKafka broker, String cluster, int[] clusterPorts) throws Exception {
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
        env.put("BLIP2_CLUSTER_KEY_FILE", keyFile(tmp).toString()); // several nodes share the cluster's key
        env.put("BLIP2_CLUSTER_TLS_DIR", io.blip2stream.TestCerts.node(i + 1).toString()); // and talk over mutual TLS
        env.put("BLIP2_NODE_ID", "node-" + i);
        env.put("BLIP2_RETRIEVAL_MODEL", Fixtures.model("blip2-itm-tiny").toString());
        return new ServeProcess(Files.createDirectories(tmp.resolve("node-" + i + "-" + UUID.randomUUID())),
                List.of("-Xmx768m"), List.of("--config", conf.toString()), env);
    }

    /**
     * Reads the captions topic and the DLT from the beginning at one isolation level, handing each record to
     * {@code onRecord} (on the reader's thread) until {@code reading} turns false.
     */
    static Thread outputReader(EmbeddedKafka broker, String isolation, AtomicBoolean reading,
                               Consumer<ConsumerRecord<String, byte[]>> onRecord) {
        Thread t = new Thread(() -> {
            Map<String, Object> c = new HashMap<>();
            c.put("bootstrap.servers", broker.bootstrapServers());
            c.put("group.id", "check-" + UUID.randomUUID());
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
                    for (ConsumerRecord<String, byte[]> r : k.poll(Duration.ofMillis(50))) {
                        try {
                            io.blip2stream.service.protocol.RecordSchemas.check(r);
                        } catch (AssertionError e) { // this thread's failure is the test's: close() reports it
                            SCHEMA_FAILURES.add(e.getMessage());
                        }
                        onRecord.accept(r);
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
