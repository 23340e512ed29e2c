package io.blip2stream.service.kafka;

import io.blip2stream.service.bus.OutboundRecord;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Per-partition transactions against a real broker: a node that lost its partition to another (a zombie) cannot
 * commit anything any more, a transaction a crashed node left open is aborted when the next owner opens its
 * producer, and the answers and the offset of a transaction are committed together.
 */
@Tag("broker")
class PartitionTransactionsTest {
    @TempDir
    static Path tmp;
    static EmbeddedKafka broker;
    static Vertx vertx;
    static Context context;
    static final String GROUP = "tx-test";
    static final TopicPartition INPUT = new TopicPartition("tx.requests", 0);

    static BrokerOnContext kafka;

    @BeforeAll
    static void start() throws Exception {
        kafka = BrokerOnContext.start(tmp.resolve("kafka"), List.of(new NewTopic("tx.requests", 1, (short) 1), new NewTopic("tx.out", 1, (short) 1)));
        broker = kafka.broker;
        vertx = kafka.vertx;
        context = kafka.context;
    }

    @AfterAll
    static void stop() throws Exception {
        kafka.close();
    }

    /** Runs on the owner's context, as the ingress does, and waits. */
    static <T> T on(Supplier<Future<T>> f) throws Exception {
        return kafka.on(f);
    }

    static PartitionTransactions transactions(String prefix) {
        return new PartitionTransactions(vertx, Map.of("bootstrap.servers", broker.bootstrapServers()), prefix, GROUP);
    }

    /** Commits {@code offset} (with metadata) with every transaction. */
    static PartitionTransactions.Offsets offsets(long[] next) {
        return new PartitionTransactions.Offsets() {
            @Override
            public OffsetAndMetadata next(Set<Long> committing) {
                return new OffsetAndMetadata(next[0], "eos1;" + next[0] + ";");
            }

            @Override
            public void committed(OffsetAndMetadata offset, Set<Long> answered) {}
        };
    }

    static OutboundRecord out(String key, String value) {
        return new OutboundRecord("tx.out", key.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8), List.of());
    }

    static List<String> read(String isolation, String keyPrefix) {
        Map<String, Object> c = new HashMap<>();
        c.put("bootstrap.servers", broker.bootstrapServers());
        c.put("isolation.level", isolation);
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, byte[]> k = new KafkaConsumer<>(c, new StringDeserializer(),
                new org.apache.kafka.common.serialization.ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition("tx.out", 0);
            k.assign(List.of(tp));
            k.seekToBeginning(List.of(tp));
            long end = k.endOffsets(List.of(tp)).get(tp);
            long until = System.currentTimeMillis() + 10_000;
            while (k.position(tp) < end && System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, byte[]> r : k.poll(Duration.ofMillis(200))) {
                    if (r.key().startsWith(keyPrefix)) {
                        got.add(new String(r.value(), StandardCharsets.UTF_8));
                    }
                }
            }
        }
        return got;
    }

    /**
     * The group's committed offset of the input, stable. A broker started moments ago may answer a group it is still
     * loading with none: asked again for up to 5 s before that counts.
     */
    static OffsetAndMetadata committed() throws Exception {
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", broker.bootstrapServers()))) {
            OffsetAndMetadata o = null;
            for (long end = System.currentTimeMillis() + 5000; o == null && System.currentTimeMillis() < end; ) {
                o = admin.listConsumerGroupOffsets(GROUP, new ListConsumerGroupOffsetsOptions().requireStable(true))
                        .partitionsToOffsetAndMetadata().get().get(INPUT);
                if (o == null) {
                    Thread.sleep(100);
                }
            }
            return o;
        }
    }

    @Test
    void aZombieIsFencedByTheNextOwnerAndItsAnswersAreNeverSeen() throws Exception {
        long[] next = {1};
        PartitionTransactions.Partition first = on(() -> transactions("zombie").open(INPUT, offsets(next)));
        on(() -> first.send(0, out("z-0", "first owner, offset 0")));
        assertEquals(new OffsetAndMetadata(1, "eos1;1;"), committed(), "answers and offset committed together");

        // the partition moves: the next owner opens the same transactional.id
        PartitionTransactions.Partition second = on(() -> transactions("zombie").open(INPUT, offsets(next)));
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> on(() -> first.send(1, out("z-1", "zombie, offset 1"))), "the old owner cannot commit");
        System.out.println("zombie's commit failed with " + e.getCause());
        next[0] = 2;
        on(() -> second.send(1, out("z-1", "second owner, offset 1"))); // answered again by its new owner
        assertEquals(List.of("first owner, offset 0", "second owner, offset 1"), read("read_committed", "z-"));
        assertEquals(2, committed().offset());
        on(second::close);
    }

    @Test
    void aTransactionLeftOpenByACrashIsAbortedWhenTheNextOwnerOpens() throws Exception {
        PartitionTransactions tx = transactions("crash");
        // a node crashed in the middle of a transaction: its answer is written, not committed
        Map<String, Object> c = new HashMap<>();
        c.put("bootstrap.servers", broker.bootstrapServers());
        c.put("transactional.id", tx.transactionalId(INPUT));
        KafkaProducer<String, byte[]> crashed = new KafkaProducer<>(c, new StringSerializer(), new ByteArraySerializer());
        crashed.initTransactions();
        crashed.beginTransaction();
        crashed.send(new ProducerRecord<>("tx.out", "c-0", "crashed owner".getBytes(StandardCharsets.UTF_8))).get();
        crashed.flush();
        assertEquals(List.of("crashed owner"), read("read_uncommitted", "c-"));

        long[] next = {1};
        PartitionTransactions.Partition owner = on(() -> tx.open(INPUT, offsets(next)));
        on(() -> owner.send(0, out("c-0", "next owner")));
        assertEquals(List.of("next owner"), read("read_committed", "c-"), "the open transaction was aborted");
        crashed.close(Duration.ZERO);
        on(owner::close);
    }
}
