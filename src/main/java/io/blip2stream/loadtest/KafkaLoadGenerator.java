package io.blip2stream.loadtest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.common.Millis;
import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiFunction;

/**
 * Sends requests to the service's input topic and times each one from its send to its result (or dead letter)
 * on the output topics, in HdrHistogram. Closed loop (a fixed number outstanding) or open loop (a fixed rate,
 * whatever the answers do). Latencies are measured by this client, end to end through Kafka.
 */
public final class KafkaLoadGenerator {
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * @param concurrency requests outstanding at once in a closed loop (0: open loop at {@code rate})
     * @param warmup      requests sent the same way before the measured ones and not counted (the path through Kafka,
     *                    the broker's and the service's code on it, compiled and warm); 0: none
     */
    public record Plan(String bootstrapServers, String inputTopic, List<String> outputTopics, String deadLetterTopic,
                       int requests, int concurrency, double rate, long timeoutMs, int warmup) {}

    /** What a run measured. Latencies in milliseconds. */
    public record Report(int sent, int answered, int deadLetters, double seconds, double throughput, double p50, double p90,
                         double p99, double max, double serverTotalP50, double serverQueuedP50,
                         java.util.Map<String, Double> serverStagesP50) {}

    private KafkaLoadGenerator() {}

    /** @param record builds the i-th request record for the given id */
    public static Report run(Plan plan, BiFunction<Integer, String, ProducerRecord<String, byte[]>> record) throws Exception {
        Histogram latency = new Histogram(TimeUnit.MINUTES.toMicros(30), 3);
        StageTimes stages = new StageTimes();
        Map<String, Long> sentAt = new ConcurrentHashMap<>();
        AtomicInteger answered = new AtomicInteger();
        AtomicInteger dead = new AtomicInteger();
        Semaphore outstanding = new Semaphore(plan.concurrency() > 0 ? plan.concurrency() : Integer.MAX_VALUE);
        AtomicBoolean stop = new AtomicBoolean();
        String prefix = "load-" + UUID.randomUUID().toString().substring(0, 8) + "-";
        String warmPrefix = prefix + "warmup-";
        AtomicInteger warmedUp = new AtomicInteger();

        Map<String, Object> cc = new HashMap<>();
        cc.put("bootstrap.servers", plan.bootstrapServers());
        cc.put("group.id", prefix + "consumer");
        cc.put("enable.auto.commit", "false");
        KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(cc, new StringDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> tps = new ArrayList<>();
        for (String t : plan.outputTopics()) {
            consumer.partitionsFor(t).forEach(p -> tps.add(new TopicPartition(t, p.partition())));
        }
        consumer.assign(tps);
        consumer.seekToEnd(tps);
        tps.forEach(consumer::position); // resolve the end now, before anything is sent
        Thread reader = new Thread(() -> {
            try (consumer) {
                while (!stop.get()) {
                    for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(50))) {
                        Long t0 = r.key() == null ? null : sentAt.remove(r.key());
                        if (t0 == null) {
                            continue;
                        }
                        if (r.key().startsWith(warmPrefix)) {
                            warmedUp.incrementAndGet();
                            if (plan.concurrency() > 0) {
                                outstanding.release();
                            }
                            continue;
                        }
                        long micros = (System.nanoTime() - t0) / 1000;
                        synchronized (latency) {
                            latency.recordValue(Math.max(1, micros));
                        }
                        if (r.topic().equals(plan.deadLetterTopic())) {
                            dead.incrementAndGet();
                        } else {
                            try {
                                JsonNode t = JSON.readTree(r.value()).get("timings");
                                stages.record(t.path("queued_ms").asDouble(), t.path("preprocess_ms").asDouble(),
                                        t.path("vision_ms").asDouble(), t.path("qformer_ms").asDouble(), t.path("prefill_ms").asDouble(),
                                        t.path("decode_ms").asDouble(), t.path("total_ms").asDouble());
                            } catch (Exception e) {
                                // not a result with timings
                            }
                        }
                        answered.incrementAndGet();
                        if (plan.concurrency() > 0) {
                            outstanding.release();
                        }
                    }
                }
            }
        }, "load-reader");
        reader.start();
        long start;
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(Map.of("bootstrap.servers", plan.bootstrapServers(),
                "acks", "all", "linger.ms", "1", "max.request.size", String.valueOf(32 << 20)),
                new StringSerializer(), new ByteArraySerializer())) {
            if (plan.warmup() > 0) {
                send(plan, plan.warmup(), warmPrefix, producer, outstanding, sentAt, record);
                long deadline = System.currentTimeMillis() + plan.timeoutMs();
                while (warmedUp.get() < plan.warmup() && System.currentTimeMillis() < deadline) {
                    Thread.sleep(20);
                }
                if (warmedUp.get() < plan.warmup()) {
                    stop.set(true);
                    reader.join(5000);
                    throw new IllegalStateException("the warm-up got " + warmedUp.get() + " of " + plan.warmup()
                            + " answers within " + plan.timeoutMs() + " ms");
                }
            }
            start = System.nanoTime();
            send(plan, plan.requests(), prefix, producer, outstanding, sentAt, record);
        }
        long deadline = System.currentTimeMillis() + plan.timeoutMs();
        while (answered.get() < plan.requests() && System.currentTimeMillis() < deadline) {
            Thread.sleep(20);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        stop.set(true);
        reader.join(5000);
        Map<String, Double> server = stages.medians();
        synchronized (latency) {
            return new Report(plan.requests(), answered.get(), dead.get(), seconds, answered.get() / seconds,
                    Millis.ofMicros(latency.getValueAtPercentile(50)), Millis.ofMicros(latency.getValueAtPercentile(90)), Millis.ofMicros(latency.getValueAtPercentile(99)),
                    Millis.ofMicros(latency.getMaxValue()), server.getOrDefault("total", 0.0), server.getOrDefault("queued", 0.0), server);
        }
    }

    /** Sends {@code n} requests with ids {@code prefix + i}, paced by the plan (closed loop, a rate, or all at once). */
    private static void send(Plan plan, int n, String prefix, KafkaProducer<String, byte[]> producer, Semaphore outstanding,
                             Map<String, Long> sentAt, BiFunction<Integer, String, ProducerRecord<String, byte[]>> record)
            throws InterruptedException {
        long start = System.nanoTime();
        for (int i = 0; i < n; i++) {
            if (plan.concurrency() > 0) {
                if (!outstanding.tryAcquire(plan.timeoutMs(), TimeUnit.MILLISECONDS)) {
                    break;
                }
            } else if (plan.rate() > 0) {
                long due = start + (long) (i * 1e9 / plan.rate());
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
            }
            String id = prefix + i;
            sentAt.put(id, System.nanoTime());
            producer.send(record.apply(i, id));
        }
        producer.flush();
    }

}
