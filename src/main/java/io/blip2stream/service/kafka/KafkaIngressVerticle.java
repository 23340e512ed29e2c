package io.blip2stream.service.kafka;

import io.blip2stream.cluster.RecordsInFlight;
import io.blip2stream.cluster.RequestStore;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.blip2stream.service.protocol.RequestDecoder;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.VerticleBase;
import io.vertx.kafka.client.common.TopicPartition;
import io.vertx.kafka.client.consumer.KafkaConsumer;
import io.vertx.kafka.client.consumer.KafkaConsumerRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.IntSupplier;

/**
 * Takes requests from the input topic and answers each one exactly once on an output topic or the dead-letter
 * topic, then lets its offset be committed. A record goes through named steps:
 * <ol>
 *   <li>{@link #take}: its partition's {@link PartitionLedger} entry says whether it is new, and it takes a place in
 *       flight;</li>
 *   <li>{@link #admit}: the {@link RedeliveryGuard} says whether it runs now, waits behind a suspect, runs alone
 *       (a node died with it in hand) or is quarantined (poison);</li>
 *   <li>{@link RecordAnswerer#answer}: decode, dedupe (the request store's claim), infer, answer or dead-letter,
 *       written through the {@link OutputSink} (a partition's transaction, or the acknowledged publisher);</li>
 *   <li>{@link #settle}: its place given back, and its offset done (or left pending, to be read again, when the
 *       answer could not be written).</li>
 * </ol>
 * The ledger bounds the work in flight by pausing partitions; the sink commits offsets. What this class keeps
 * itself is the consumer's life: joining, rejoining when a partition's transactions end, and draining at stop.
 */
public final class KafkaIngressVerticle extends VerticleBase {
    private static final Logger LOG = LoggerFactory.getLogger(KafkaIngressVerticle.class);
    private final ServiceConfig config;
    private final String bootstrapServers;
    private final ServiceMetrics metrics;
    private final RequestDecoder decoder;
    private final RequestStore store; // null: none
    private final IntSupplier clusterSize;
    /** This node's journal of records in hand, across its own deaths (poison records). */
    private final CrashJournal journal;
    /** The cluster's markers of records in hand; null: none. */
    private final RecordsInFlight recordsInFlight;
    private final PartitionLedger ledger;
    private RecordAnswerer answerer;
    private RedeliveryGuard guard;
    private OutputSink sink;
    private KafkaConsumer<byte[], byte[]> consumer;
    private long commitTimer = -1;
    private long lagTimer = -1;
    private boolean stopping;
    private boolean rejoining;
    /** Completes once the first assignment (possibly empty) is taken in: every partition in it ready to read. */
    private final Promise<Void> firstAssignment = Promise.promise();

    /**
     * @param store           the cluster's memory of requests (identity, redeliveries); null: none
     * @param recordsInFlight the cluster's markers of records in hand (poison records across nodes); null: none
     * @param clusterSize     how many nodes the cluster has now (this one included)
     */
    public KafkaIngressVerticle(ServiceConfig config, String bootstrapServers, ServiceMetrics metrics, RequestDecoder decoder,
                                RequestStore store, RecordsInFlight recordsInFlight, IntSupplier clusterSize) {
        this.recordsInFlight = recordsInFlight;
        this.clusterSize = clusterSize;
        // opened here, on the deploying thread: it reads the last run's journal (what this node died with)
        this.journal = CrashJournal.open(config.dataDir().resolve("crashes"),
                config.kafka().groupId() + "-" + config.nodeId() + "-" + config.cluster().port());
        this.store = store;
        this.config = config;
        this.bootstrapServers = bootstrapServers;
        this.metrics = metrics;
        this.decoder = decoder;
        this.ledger = new PartitionLedger(metrics, config.kafka().maxInFlight(), config.kafka().maxInFlightPerPartition());
    }

    @Override
    public Future<?> start() {
        ServiceConfig.Kafka k = config.kafka();
        answerer = new RecordAnswerer(vertx, context, config, metrics, decoder, store);
        guard = new RedeliveryGuard(journal, recordsInFlight, k.poisonAfterCrashes(), context);
        consumer = KafkaConsumer.create(vertx, IngressSettings.consumer(k, bootstrapServers));
        if (k.exactlyOnce()) {
            try {
                PartitionTransactions transactions = new PartitionTransactions(vertx, IngressSettings.producer(k, bootstrapServers),
                        k.groupId(), k.groupId());
                Admin admin = Admin.create(new HashMap<>(k.admin(bootstrapServers, Map.of())));
                sink = new TransactionalOutput(vertx, ledger, transactions, admin, k.groupId(), this::take, () -> {
                    applyLimits();
                    checkFirstAssignment();
                }, this::rejoin);
            } catch (RuntimeException e) { // bad client settings: the consumer goes too
                return consumer.close().transform(x -> Future.failedFuture(e));
            }
        } else {
            sink = new AcknowledgedOutput(vertx, ledger, consumer);
        }
        consumer.exceptionHandler(e -> LOG.warn("Kafka consumer error: {}", e.toString()));
        consumer.partitionsAssignedHandler(this::assigned);
        consumer.partitionsRevokedHandler(this::revoked);
        consumer.handler(this::take);
        commitTimer = vertx.setPeriodic(Math.max(10, k.commitIntervalMs()), t -> sink.commit());
        lagTimer = vertx.setPeriodic(5000, t -> {
            ledger.updateLag(consumer);
            ledger.reconcile(consumer);
        });
        return consumer.subscribe(k.topics().requests());
    }

    /**
     * Completes once this node has joined the consumer group and can take records: its first assignment (possibly
     * empty) has every partition ready (with exactly-once output, its producer open and its committed offset read).
     */
    public Future<Void> firstAssignmentReady() {
        return firstAssignment.future();
    }

    private void checkFirstAssignment() {
        if (!firstAssignment.future().isComplete() && ledger.allReady()) {
            firstAssignment.tryComplete();
        }
    }

    private void assigned(Set<TopicPartition> tps) {
        ledger.assign(tps);
        sink.assigned(tps);
        LOG.info("assigned {}; owns {}", tps, ledger.assigned());
        applyLimits();
        checkFirstAssignment();
    }

    private void revoked(Set<TopicPartition> tps) {
        sink.revoked(tps);
        ledger.unassign(tps);
        LOG.info("revoked {}; owns {}", tps, ledger.assigned());
    }

    /**
     * A partition's transactions ended while this node still owns it: a revocation would have run before this on the
     * event loop (the consumer hands the revocation over before the group gives the partition to anyone else, whose
     * producer is what fences this one), so it is not that. The broker fenced the producer (it aborted a transaction
     * left open past {@code transaction.timeout.ms}, as through an outage) or the producer failed for good. Opening
     * it again in place could fence a new owner, if the group dropped this member without its knowing yet; so the
     * ingress leaves the group and joins again, and answers whatever partitions the group then gives it (their
     * records from the committed offsets; answers already generated are published from the request store).
     */
    private void rejoin(TopicPartition tp, Throwable e) {
        if (stopping || rejoining) {
            return;
        }
        rejoining = true;
        LOG.warn("{}: its transactions ended while this node owns it ({}): leaving the consumer group and joining again",
                tp, e.toString());
        leaveGroup()
                .compose(v -> stopping ? Future.<Void>succeededFuture() : consumer.subscribe(config.kafka().topics().requests()))
                .onComplete(ar -> {
                    rejoining = false;
                    if (ar.failed()) {
                        LOG.error("could not join the consumer group again: {}", ar.cause().toString());
                    }
                });
    }

    /** Leaves the consumer group: every partition revoked, whether the consumer reports it or not. */
    private Future<Void> leaveGroup() {
        return consumer.unsubscribe().map(v -> {
            Set<TopicPartition> left = ledger.assigned();
            if (!left.isEmpty()) {
                revoked(left); // in case the consumer did not report the revocation
            }
            return null;
        });
    }

    // ---- the steps of one record

    /** Step 1: a record read is taken in, unless its partition is not this node's now or it was taken before. */
    private void take(KafkaConsumerRecord<byte[], byte[]> kafkaRecord) {
        ConsumerRecord<byte[], byte[]> record = kafkaRecord.record(); // Kafka's own: null header values are fine there
        PartitionOffsets p = sink.offsetsFor(kafkaRecord);
        if (p == null || !p.isNew(record.offset())) {
            return;
        }
        ledger.taken(p, record.offset());
        applyLimits();
        admit(record, p, System.nanoTime());
    }

    /** Step 2: the redelivery guard decides when, and whether, the record runs; then step 3 answers it. */
    private void admit(ConsumerRecord<byte[], byte[]> record, PartitionOffsets p, long accepted) {
        TopicPartition tp = new TopicPartition(record.topic(), record.partition());
        String where = RecordAnswerer.where(record);
        RecordAnswerer.Output out = answer -> sink.publish(tp, p, record.offset(), answer);
        guard.taken(where); // before anything runs on it: if this node dies now, the record was in its hands
        guard.crashes(where).onComplete(c -> {
            int crashes = c.succeeded() ? c.result() : 0;
            switch (guard.admit(where, crashes, alone -> settle(record, p, where, answer(record, accepted, out), alone),
                    () -> finish(p, record.offset(), false))) {
                case QUARANTINE -> settle(record, p, where, answerer.quarantine(record, crashes, out), false);
                case RUN -> settle(record, p, where, answer(record, accepted, out), false);
                case WAIT -> applyLimits(); // a suspect pauses every partition
            }
            guard.runIfClear(ledger.inFlight()); // this record's place is known now: a suspect may be clear to run
        });
    }

    /** Step 3, {@link RecordAnswerer#answer}, with a throw turned into a failed future. */
    private Future<Void> answer(ConsumerRecord<byte[], byte[]> record, long accepted, RecordAnswerer.Output out) {
        try {
            return answerer.answer(record, accepted, out);
        } catch (RuntimeException e) {
            return Future.failedFuture(e);
        }
    }

    /** Step 4: a record's answer settled: its place is given back, and it is out of this node's hands. */
    private void settle(ConsumerRecord<byte[], byte[]> record, PartitionOffsets p, String where, Future<Void> answered, boolean wasAlone) {
        TopicPartition tp = new TopicPartition(record.topic(), record.partition());
        long offset = record.offset();
        answered.onComplete(ar -> {
            guard.done(where, wasAlone);
            if (ar.succeeded()) {
                finish(p, offset, true);
                return;
            }
            // the output could not be written: keep the offset pending, so the record is read again
            if (!ledger.owns(tp, p)) {
                LOG.info("record {}: the partition moved before its answer was committed; its new owner answers it", where);
            } else {
                LOG.error("record {} is not answered and will be read again after a restart: {}", where, ar.cause().toString());
            }
            finish(p, offset, false);
        });
    }

    private void finish(PartitionOffsets p, long offset, boolean answered) {
        ledger.finished(p, offset, answered);
        applyLimits();
    }

    /** Pauses what must wait (over its bound, not ready, or everything while stopping or a suspect runs alone). */
    private void applyLimits() {
        if (consumer == null) {
            return;
        }
        ledger.applyLimits(consumer, stopping || guard.pausesAll(), () -> {
            if (!stopping) {
                vertx.setTimer(100, t -> applyLimits());
            }
        });
        guard.runIfClear(ledger.inFlight()); // a suspect may be clear to run, or what waited behind the suspects
    }

    /** Whether other nodes are in the cluster now (which can take this node's partitions over). */
    private boolean othersInCluster() {
        try {
            return clusterSize.getAsInt() > 1;
        } catch (RuntimeException e) { // the cluster stopping under us: no one to hand over to
            return false;
        }
    }

    /**
     * Stops taking records and lets those in flight finish (up to the drain timeout). With exactly-once output and
     * other nodes in the cluster, the node leaves the consumer group first, so that its partitions move at once
     * instead of after the drain: what is answered is committed as they are revoked, and the answers still in flight
     * are kept in the cluster's request store, where the partitions' new owners (waiting on this node's claims) find
     * and publish them. Alone, it commits what is done after the drain, then leaves.
     */
    @Override
    public Future<?> stop() {
        stopping = true;
        vertx.cancelTimer(lagTimer); // no lag or reconcile calls on a consumer about to close (they would fail woken up)
        if (guard != null) {
            guard.handBackAll(); // read again by whoever owns their partitions next
        }
        applyLimits();
        Future<Void> handedOver = !sink.handsOverBeforeDrain() || store == null || !othersInCluster() ? Future.succeededFuture()
                : leaveGroup().recover(e -> {
                    LOG.warn("leaving the consumer group before the drain failed: {}", e.toString());
                    return Future.succeededFuture();
                });
        return handedOver.compose(v -> drained())
                .compose(v -> sink.close())
                .eventually(() -> {
                    // no timer may call the consumer while it closes (a call then would start its thread again)
                    vertx.cancelTimer(commitTimer);
                    journal.close(); // a graceful stop: what is still in hand is handed back, not a crash
                    answerer.close();
                    return consumer.close();
                });
    }

    /** Completes once nothing is in flight, or after the drain timeout. */
    private Future<Void> drained() {
        Promise<Void> drained = Promise.promise();
        long deadline = System.currentTimeMillis() + config.drainTimeoutMs();
        long[] poll = new long[1];
        poll[0] = vertx.setPeriodic(20, t -> {
            if (ledger.inFlight() <= 0 || System.currentTimeMillis() > deadline) {
                vertx.cancelTimer(poll[0]);
                if (ledger.inFlight() > 0) {
                    LOG.warn("{} requests still in flight after {} ms; their offsets stay uncommitted and they will be read again",
                            ledger.inFlight(), config.drainTimeoutMs());
                }
                drained.tryComplete();
            }
        });
        return drained.future();
    }
}
