package io.blip2stream.service.kafka;

import io.blip2stream.service.bus.OutboundRecord;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.kafka.client.common.TopicPartition;
import io.vertx.kafka.client.consumer.KafkaConsumerRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import java.util.function.Consumer;

/**
 * Exactly-once output ({@code kafka.exactly_once: true}): each assignment of a partition opens its own
 * {@link PartitionTransactions.Partition}, and the partition's answers and its offset (with which records above it
 * are answered already, {@link PartitionProgress}) are committed in one transaction. A partition takes no record
 * until its producer is open (which fences its last owner and aborts what that left open) and its committed offset
 * is read; records that come before are kept and handed back to the ingress then.
 */
final class TransactionalOutput implements OutputSink {
    private static final Logger LOG = LoggerFactory.getLogger(TransactionalOutput.class);

    private final Vertx vertx;
    private final PartitionLedger ledger;
    private final PartitionTransactions transactions;
    private final Admin admin;
    private final String groupId;
    private final Consumer<KafkaConsumerRecord<byte[], byte[]>> take;
    private final Runnable ready;
    private final BiConsumer<TopicPartition, Throwable> ended;

    /**
     * @param take  takes a record in (one that came before its partition was ready)
     * @param ready a partition became ready
     * @param ended a partition's transactions ended for good while this node still owns it (fenced by the broker, or
     *              the producer failed): the ingress should leave the consumer group and join again
     */
    TransactionalOutput(Vertx vertx, PartitionLedger ledger, PartitionTransactions transactions, Admin admin, String groupId,
                        Consumer<KafkaConsumerRecord<byte[], byte[]>> take, Runnable ready, BiConsumer<TopicPartition, Throwable> ended) {
        this.vertx = vertx;
        this.ledger = ledger;
        this.transactions = transactions;
        this.admin = admin;
        this.groupId = groupId;
        this.take = take;
        this.ready = ready;
        this.ended = ended;
    }

    @Override
    public void assigned(Set<TopicPartition> tps) {
        for (TopicPartition tp : tps) {
            open(tp, ledger.open(tp, false), 0);
        }
    }

    @Override
    public void revoked(Set<TopicPartition> tps) {
        for (TopicPartition tp : tps) {
            PartitionOffsets p = ledger.remove(tp);
            if (p != null && p.txn != null) {
                p.txn.close(); // commits what is answered; what is still in flight is the next owner's
            }
        }
    }

    @Override
    public PartitionOffsets offsetsFor(KafkaConsumerRecord<byte[], byte[]> record) {
        PartitionOffsets p = ledger.get(new TopicPartition(record.topic(), record.partition()));
        if (p != null && !p.ready) {
            p.early.add(record); // taken once the transactions are open and the committed offset is known
            return null;
        }
        return p; // null: revoked while the record was on its way; its next owner reads it
    }

    @Override
    public Future<Void> publish(TopicPartition tp, PartitionOffsets p, long offset, OutboundRecord answer) {
        if (!ledger.owns(tp, p) || p.txn == null) {
            return Future.failedFuture(new RecordAnswerer.NotPublished(new IllegalStateException(tp + " was revoked")));
        }
        return p.txn.send(offset, answer).recover(e -> Future.failedFuture(e instanceof PartitionTransactions.RecordRefusedException
                ? new RecordAnswerer.RecordRefused(e.getMessage()) : new RecordAnswerer.NotPublished(e)));
    }

    /** Commits the offsets that moved without an output (records answered by the last owner); answers commit themselves. */
    @Override
    public Future<Void> commit() {
        for (PartitionOffsets p : ledger.all()) {
            if (p.ready && p.txn != null) {
                p.txn.commit();
            }
        }
        return Future.succeededFuture();
    }

    @Override
    public boolean handsOverBeforeDrain() {
        return true;
    }

    /** The last offsets in a transaction each, then the producers and (whatever happened to them) the admin client close. */
    @Override
    public Future<Void> close() {
        Future<Void> producers;
        try {
            commit();
            List<Future<Void>> closed = new ArrayList<>();
            for (PartitionOffsets p : ledger.all()) {
                if (p.txn != null) {
                    closed.add(p.txn.close());
                }
            }
            producers = Future.join(closed).mapEmpty();
        } catch (RuntimeException e) {
            producers = Future.failedFuture(e);
        }
        return producers.recover(e -> {
                    LOG.warn("closing the transactional producers failed: {}", e.toString());
                    return Future.succeededFuture();
                })
                // closing the admin client waits on its network thread: not on the event loop
                .eventually(() -> vertx.executeBlocking(() -> {
                    admin.close(Duration.ofSeconds(2));
                    return null;
                }, false));
    }

    /**
     * Opens the partition's transactional producer (which fences its last owner and aborts what that left open),
     * then reads the committed offset and its metadata (which records above it were answered already), then takes
     * the records that came meanwhile. Tries again, backing off, until it works or the partition moves.
     */
    private void open(TopicPartition tp, PartitionOffsets p, int attempt) {
        org.apache.kafka.common.TopicPartition ktp = new org.apache.kafka.common.TopicPartition(tp.getTopic(), tp.getPartition());
        transactions.open(ktp, p.transactionOffsets())
                .compose(txn -> {
                    if (!ledger.owns(tp, p)) {
                        txn.close(); // revoked meanwhile
                        return Future.failedFuture("revoked");
                    }
                    p.txn = txn;
                    txn.onFatal(e -> {
                        if (ledger.owns(tp, p)) {
                            ended.accept(tp, e);
                        }
                    });
                    return committedOffset(ktp);
                })
                .onSuccess(committed -> {
                    if (!ledger.owns(tp, p)) {
                        return;
                    }
                    p.loadCommitted(committed);
                    LOG.info("{}: committed offset {}, answered up to {} except {}", tp, committed == null ? "none" : committed.offset(),
                            p.answeredUpTo, p.redo);
                    p.ready = true;
                    ready.run();
                    List<KafkaConsumerRecord<byte[], byte[]>> early = new ArrayList<>(p.early);
                    p.early.clear();
                    early.forEach(take);
                })
                .onFailure(e -> {
                    if (!ledger.owns(tp, p) || "revoked".equals(e.getMessage())) {
                        return;
                    }
                    LOG.warn("{}: could not open its transactions (attempt {}): {}", tp, attempt + 1, e.toString());
                    if (p.txn != null) {
                        p.txn.close();
                        p.txn = null;
                    }
                    vertx.setTimer(Math.min(5000, 250L << Math.min(attempt, 5)), t -> {
                        if (ledger.owns(tp, p)) {
                            open(tp, p, attempt + 1);
                        }
                    });
                });
    }

    /**
     * The partition's committed offset, read stable (after any transaction still open on it ended) by the admin
     * client: the consumer's own {@code committed()} does not answer while the partition is paused.
     */
    private Future<OffsetAndMetadata> committedOffset(org.apache.kafka.common.TopicPartition ktp) {
        return vertx.executeBlocking(() -> admin.listConsumerGroupOffsets(
                        Map.of(groupId, new ListConsumerGroupOffsetsSpec().topicPartitions(List.of(ktp))),
                        new ListConsumerGroupOffsetsOptions().requireStable(true))
                .partitionsToOffsetAndMetadata(groupId).get(30, TimeUnit.SECONDS).get(ktp), false);
    }
}
