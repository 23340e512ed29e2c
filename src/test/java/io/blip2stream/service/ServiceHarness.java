package io.blip2stream.service;

import io.blip2stream.model.Fixtures;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.vertx.core.VertxOptions;
import io.vertx.core.internal.VertxInternal;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * The service as the tests run it: a real in-process broker on free ports, the fixture models, HTTP on a free
 * port, and Vert.x's blocked-thread checker set tight, every event-loop block recorded.
 */
public final class ServiceHarness implements AutoCloseable {
    public final Blip2Service service;
    public final List<String> blockedEventLoops = new CopyOnWriteArrayList<>();
    private final KafkaProducer<String, byte[]> producer;

    public ServiceHarness(Path dataDir, Map<String, String> extra) throws Exception {
        VertxOptions vo = new VertxOptions().setBlockedThreadCheckInterval(100).setMaxEventLoopExecuteTime(300)
                .setMaxEventLoopExecuteTimeUnit(TimeUnit.MILLISECONDS);
        service = new Blip2Service(config(dataDir, extra), vo);
        service.start();
        ((VertxInternal) service.vertx()).blockedThreadChecker().setThreadBlockedHandler(e -> {
            if (e.thread().getName().contains("eventloop")) {
                blockedEventLoops.add(e.toString());
            }
        });
        producer = new KafkaProducer<>(Map.of("bootstrap.servers", service.bootstrapServers(), "acks", "all",
                "max.request.size", String.valueOf(32 << 20)), new StringSerializer(), new ByteArraySerializer());
    }

    /** The tests' configuration: an in-process broker and HTTP on free ports, the fixture models, and {@code extra}. */
    public static ServiceConfig config(Path dataDir, Map<String, String> extra) {
        Map<String, String> o = new HashMap<>();
        o.put("data_dir", dataDir.toString());
        o.put("kafka.embedded.port", "0");
        o.put("kafka.embedded.controller_port", "0");
        o.put("http.port", "0");
        o.put("http.host", "127.0.0.1");
        o.put("model.path", Fixtures.model("blip2-opt-tiny").toString());
        o.put("model.retrieval_path", Fixtures.model("blip2-itm-tiny").toString());
        o.put("kafka.commit_interval_ms", "50");
        o.put("node.id", "test-node");
        o.put("cluster.name", "test-" + UUID.randomUUID());
        o.putAll(extra);
        return ConfigLoader.load(null, Map.of(), o);
    }

    public void send(ProducerRecord<String, byte[]> r) throws Exception {
        producer.send(r).get();
    }

    public ServiceConfig.Topics topics() {
        return service.config().kafka().topics();
    }

    /** A consumer of the given topics from their beginning. */
    public KafkaConsumer<String, byte[]> consumer(List<String> topics) {
        Map<String, Object> c = new HashMap<>();
        c.put("bootstrap.servers", service.bootstrapServers());
        c.put("group.id", "test-" + UUID.randomUUID());
        c.put("auto.offset.reset", "earliest");
        KafkaConsumer<String, byte[]> k = new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> tps = new ArrayList<>();
        for (String t : topics) {
            k.partitionsFor(t).forEach(p -> tps.add(new TopicPartition(t, p.partition())));
        }
        k.assign(tps);
        k.seekToBeginning(tps);
        return k;
    }

    /** Polls until {@code done} holds for what was read, or the timeout. */
    public static List<ConsumerRecord<String, byte[]>> readUntil(KafkaConsumer<String, byte[]> c,
                                                                 Predicate<List<ConsumerRecord<String, byte[]>>> done, long timeoutMs) {
        List<ConsumerRecord<String, byte[]>> out = new ArrayList<>();
        long end = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < end && !done.test(out)) {
            io.blip2stream.service.protocol.RecordSchemas.checked(c.poll(Duration.ofMillis(200))).forEach(out::add);
        }
        return out;
    }

    @Override
    public void close() {
        producer.close();
        service.stop();
    }
}
