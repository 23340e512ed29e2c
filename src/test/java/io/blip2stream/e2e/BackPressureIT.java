package io.blip2stream.e2e;

import io.blip2stream.model.Fixtures;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
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
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Back-pressure (issue 9, item 3): a burst of 2,000 requests at a slow model (a pause per decode step) against
 * {@code serve} with {@code -Xmx512m} and a short {@code max.poll.interval.ms}: every request is answered, the heap
 * in use stays under 70% of the maximum (sampled from /metrics throughout), and the service's consumer is never
 * dropped from its group (one member id from start to end).
 */
@Tag("e2e")
class BackPressureIT {
    static final int REQUESTS = 2000;

    @TempDir
    Path tmp;

    static double heapUsed(String metrics) {
        double sum = 0;
        for (String line : metrics.split("\n")) {
            if (line.startsWith("jvm_memory_used_bytes{") && line.contains("area=\"heap\"")) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    /** The old generation's live data after the last full or mixed collection (Micrometer's JvmGcMetrics). */
    static double liveData(String metrics) {
        for (String line : metrics.split("\n")) {
            if (line.startsWith("jvm_gc_live_data_size_bytes")) {
                return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return 0;
    }

    @Test
    void aBurstOf2000AtASlowModelStaysBoundedAndInItsGroup() throws Exception {
        Path conf = tmp.resolve("slow.yaml");
        Files.writeString(conf, "kafka:\n  consumer:\n    max.poll.interval.ms: \"15000\"\n");
        long xmx = 512L << 20;
        ServeProcess serve = new ServeProcess(tmp.resolve("data"), List.of("-Xmx512m", "-XX:+ExitOnOutOfMemoryError"),
                List.of("--config", conf.toString()), Map.of("BLIP2_STEP_DELAY_MS", "5"));
        int kafka = serve.kafkaPort;
        int http = serve.httpPort;
        Process p = serve.process;
        StringBuffer log = serve.log;
        String bootstrap = "localhost:" + kafka;
        AtomicLong maxHeap = new AtomicLong();
        AtomicLong maxLive = new AtomicLong();
        Set<String> memberIds = ConcurrentHashMap.newKeySet();
        Thread watcher = null;
        try {
            assertTrue(serve.awaitReady(120), "the service starts: " + log);
            HttpClient client = HttpClient.newHttpClient();
            boolean[] stop = {false};
            watcher = new Thread(() -> {
                try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap))) {
                    while (!stop[0]) {
                        String m = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + http + "/metrics")).build(),
                                HttpResponse.BodyHandlers.ofString()).body();
                        maxHeap.accumulateAndGet((long) heapUsed(m), Math::max);
                        maxLive.accumulateAndGet((long) liveData(m), Math::max);
                        ConsumerGroupDescription g = admin.describeConsumerGroups(List.of("blip2-stream")).all().get()
                                .get("blip2-stream");
                        for (MemberDescription md : g.members()) {
                            memberIds.add(md.consumerId());
                        }
                        Thread.sleep(200);
                    }
                } catch (Exception e) {
                    if (!stop[0]) {
                        e.printStackTrace();
                    }
                }
            });
            watcher.start();
            byte[] png = Fixtures.image("blip2-opt-tiny", 0);
            long t0 = System.nanoTime();
            try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(Map.of("bootstrap.servers", bootstrap, "linger.ms", "5"),
                    new StringSerializer(), new ByteArraySerializer())) {
                for (int i = 0; i < REQUESTS; i++) {
                    ProducerRecord<String, byte[]> r = new ProducerRecord<>("blip2.requests", "burst-" + i, png);
                    r.headers().add("blip2-task", "caption".getBytes()).add("blip2-params", "{\"max_new_tokens\":4}".getBytes());
                    producer.send(r);
                }
                producer.flush();
            }
            Set<String> answered = new HashSet<>();
            Map<String, Object> cc = new HashMap<>();
            cc.put("bootstrap.servers", bootstrap);
            cc.put("group.id", "it-" + UUID.randomUUID());
            try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(cc, new StringDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> tps = new ArrayList<>();
                c.partitionsFor("blip2.captions").forEach(pi -> tps.add(new TopicPartition("blip2.captions", pi.partition())));
                c.assign(tps);
                c.seekToBeginning(tps);
                long end = System.currentTimeMillis() + 300_000;
                while (System.currentTimeMillis() < end && answered.size() < REQUESTS) {
                    for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(c.poll(Duration.ofMillis(200)))) {
                        answered.add(r.key());
                    }
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            stop[0] = true;
            watcher.join(5000);
            System.out.printf("%d answered in %.1f s; heap in use at most %.0f MB of %d MB (%.0f%%), live data after GC at most"
                    + " %.0f MB; consumer member ids seen: %s%n", answered.size(), seconds, maxHeap.get() / 1e6, xmx >> 20,
                    100.0 * maxHeap.get() / xmx, maxLive.get() / 1e6, memberIds);
            assertEquals(REQUESTS, answered.size(), "every request answered");
            assertTrue(maxHeap.get() > 0 && maxHeap.get() < 0.7 * xmx, "heap in use at most " + maxHeap.get() + " bytes");
            assertEquals(1, memberIds.size(), "never dropped from the group: " + memberIds);
            assertTrue(p.isAlive());
        } finally {
            serve.stop();
        }
    }
}
