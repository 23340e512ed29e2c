package io.blip2stream.service.kafka;

import io.blip2stream.service.metrics.ServiceMetrics;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.kafka.client.common.TopicPartition;
import io.vertx.kafka.client.consumer.KafkaConsumer;
import org.apache.kafka.clients.admin.NewTopic;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The ingress's flow control against a real consumer: a partition the consumer no longer owns (a rebalance overtook
 * the ledger) does not leave the others paused, and the ledger puts right a consumer whose paused partitions differ
 * from its own.
 */
@Tag("broker")
class PartitionLedgerTest {
    @TempDir
    static Path tmp;
    static EmbeddedKafka broker;
    static Vertx vertx;
    static Context context;
    static final String TOPIC = "ledger.requests";
    static final TopicPartition P0 = new TopicPartition(TOPIC, 0);
    static final TopicPartition P1 = new TopicPartition(TOPIC, 1);
    static final TopicPartition P2 = new TopicPartition(TOPIC, 2);

    static BrokerOnContext kafka;

    @BeforeAll
    static void start() throws Exception {
        kafka = BrokerOnContext.start(tmp.resolve("kafka"), List.of(new NewTopic(TOPIC, 3, (short) 1)));
        broker = kafka.broker;
        vertx = kafka.vertx;
        context = kafka.context;
    }

    @AfterAll
    static void stop() throws Exception {
        kafka.close();
    }

    static <T> T on(Supplier<Future<T>> f) throws Exception {
        return kafka.on(f);
    }

    /** A consumer that owns {@code owned}. */
    static KafkaConsumer<byte[], byte[]> consumer(Set<TopicPartition> owned) throws Exception {
        KafkaConsumer<byte[], byte[]> c = on(() -> Future.succeededFuture(KafkaConsumer.<byte[], byte[]>create(vertx, Map.of(
                "bootstrap.servers", broker.bootstrapServers(),
                "key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer",
                "value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer"))));
        on(() -> {
            c.handler(r -> { });
            return c.assign(owned);
        });
        return c;
    }

    /** Waits until the consumer's paused partitions are {@code expected}. */
    static void awaitPaused(KafkaConsumer<byte[], byte[]> c, Set<TopicPartition> expected) throws Exception {
        Set<TopicPartition> paused = null;
        for (long end = System.currentTimeMillis() + 10_000; System.currentTimeMillis() < end; Thread.sleep(50)) {
            paused = on(c::paused);
            if (paused.equals(expected)) {
                return;
            }
        }
        assertEquals(expected, paused);
    }

    @Test
    void aPartitionTheConsumerNoLongerOwnsLeavesTheOthersAsTheLedgerSays() throws Exception {
        // the consumer owns 1 and 2; the ledger has not heard yet that 0 moved (0 comes first in a set of the three)
        KafkaConsumer<byte[], byte[]> c = consumer(Set.of(P1, P2));
        PartitionLedger ledger = new PartitionLedger(new ServiceMetrics(), 100, 1);
        AtomicInteger again = new AtomicInteger();
        PartitionOffsets[] p = new PartitionOffsets[3];
        on(() -> {
            ledger.assign(Set.of(P0, P1, P2));
            p[0] = ledger.getOrOpen(P0);
            p[1] = ledger.getOrOpen(P1);
            p[2] = ledger.getOrOpen(P2);
            for (int i = 0; i < 3; i++) {
                ledger.taken(p[i], 7); // each at its bound of one
            }
            ledger.applyLimits(c, false, again::incrementAndGet);
            return Future.succeededFuture();
        });
        awaitPaused(c, Set.of(P1, P2));
        for (long end = System.currentTimeMillis() + 10_000; again.get() == 0 && System.currentTimeMillis() < end; ) {
            Thread.sleep(20);
        }
        assertTrue(again.get() >= 1, "the failed pause of partition 0 asks to try again");
        assertEquals(Boolean.FALSE, on(() -> Future.succeededFuture(p[0].paused)), "partition 0 is as it was: not paused");

        on(() -> {
            for (int i = 0; i < 3; i++) {
                ledger.finished(p[i], 7, true);
            }
            p[0].paused = true; // as if its pause had gone through: now its resume fails
            ledger.applyLimits(c, false, again::incrementAndGet);
            return Future.succeededFuture();
        });
        awaitPaused(c, Set.of()); // 1 and 2 are read again, whatever the order of the calls
        on(c::close);
    }

    @Test
    void theLedgerPutsRightAConsumerWhosePausedPartitionsDiffer() throws Exception {
        KafkaConsumer<byte[], byte[]> c = consumer(Set.of(P0, P1));
        PartitionLedger ledger = new PartitionLedger(new ServiceMetrics(), 100, 1);
        on(() -> {
            ledger.assign(Set.of(P0, P1));
            ledger.taken(ledger.getOrOpen(P1), 3); // at its bound: the ledger pauses 1
            ledger.getOrOpen(P0);
            ledger.applyLimits(c, false, () -> { });
            return Future.succeededFuture();
        });
        awaitPaused(c, Set.of(P1));
        // behind the ledger's back (a call lost in a rebalance): 0 paused, 1 read again
        on(() -> c.pause(P0).compose(v -> c.resume(P1)));
        awaitPaused(c, Set.of(P0));
        on(() -> {
            ledger.reconcile(c);
            return Future.succeededFuture();
        });
        awaitPaused(c, Set.of(P1));
        on(c::close);
    }

    @Test
    void aPartitionAssignedAgainIsPausedAgainWhenItIsFull() throws Exception {
        KafkaConsumer<byte[], byte[]> c = consumer(Set.of(P0, P1));
        PartitionLedger ledger = new PartitionLedger(new ServiceMetrics(), 100, 1);
        on(() -> {
            ledger.assign(Set.of(P0, P1));
            ledger.taken(ledger.getOrOpen(P0), 5); // at its bound: paused
            ledger.getOrOpen(P1);
            ledger.applyLimits(c, false, () -> { });
            return Future.succeededFuture();
        });
        awaitPaused(c, Set.of(P0));
        // the group takes 0 away and gives it back: the consumer reads it afresh, unpaused; its offsets stay (acknowledged)
        on(() -> c.assign(Set.of(P1)).compose(v -> c.assign(Set.of(P0, P1))));
        awaitPaused(c, Set.of());
        on(() -> {
            ledger.unassign(Set.of(P0));
            ledger.assign(Set.of(P0));
            ledger.applyLimits(c, false, () -> { });
            return Future.succeededFuture();
        });
        awaitPaused(c, Set.of(P0)); // still at its bound: paused again, not read past it
        on(c::close);
    }
}
