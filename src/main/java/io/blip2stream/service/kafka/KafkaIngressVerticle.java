package io.blip2stream.service.kafka;

import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.OutboundRecord;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.blip2stream.service.protocol.RequestDecoder;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.VerticleBase;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.kafka.client.common.TopicPartition;
import io.vertx.kafka.client.consumer.KafkaConsumer;
import io.vertx.kafka.client.consumer.KafkaConsumerRecord;
import io.vertx.kafka.client.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

/**
 * Takes requests from the input topic and answers each one exactly once on an output topic or the dead-letter
 * topic, then lets its offset be committed:
 * <ol>
 *   <li>decode and validate the record (off the event loop), or send it to the DLT with the reason in headers;</li>
 *   <li>hand the job to an inference worker over the event bus;</li>
 *   <li>have the result publisher write the result (or the dead letter) and wait for Kafka's acknowledgement;</li>
 *   <li>mark the offset done; the lowest offset not yet done, per partition, is committed periodically.</li>
 * </ol>
 * Work in flight is bounded per partition and in total by pausing and resuming partitions (never the whole
 * stream, so the consumer keeps polling and stays in its group). Records already fetched when a partition is
 * paused are still taken, so a partition may exceed its bound by at most {@code max.poll.records}.
 */
public final class KafkaIngressVerticle extends VerticleBase {
    private static final Logger LOG = LoggerFactory.getLogger(KafkaIngressVerticle.class);
    private final ServiceConfig config;
    private final String bootstrapServers;
    private final ServiceMetrics metrics;
    private final RequestDecoder decoder;
    private final io.blip2stream.cluster.RequestStore store;
    private RecordAnswerer answerer;
    private final java.util.function.IntSupplier clusterSize;
    /** This node's journal of records in hand, across its own deaths (poison records). */
    private final io.blip2stream.service.kafka.CrashJournal journal;
    /** The cluster's markers of records in hand; null: none. */
    private final io.blip2stream.cluster.RecordsInFlight recordsInFlight;
    /** Poison records: counted, quarantined, suspects run alone. */
    private RedeliveryGuard guard;
    private KafkaConsumer<byte[], byte[]> consumer;
    private final Map<TopicPartition, PartitionState> partitions = new HashMap<>();
    private final Set<TopicPartition> assigned = new HashSet<>();
    private int inFlight;
    private long commitTimer = -1;
    /** Exactly-once output (kafka.exactly_once): per partition, outputs and offsets in one transaction; else null. */
    private io.blip2stream.service.kafka.PartitionTransactions transactions;
    private org.apache.kafka.clients.admin.Admin admin;
    private boolean stopping;
    private boolean rejoining;
    /** Completes once the first assignment (possibly empty) is taken in: every partition in it ready to read. */
    private final Promise<Void> firstAssignment = Promise.promise();

    /**
     * Offsets of one partition: those taken and not yet answered, and how far it is safe to commit. With exactly-once
     * output, one per assignment: records of an earlier assignment of the same partition are not answered by it.
     */
    private static final class PartitionState {
        final TreeSet<Long> pending = new TreeSet<>();
        long highest = -1;    // the highest offset taken
        long committed = -1;  // the last offset committed (the next one to read)
        boolean paused;
        // exactly-once only
        io.blip2stream.service.kafka.PartitionTransactions.Partition txn;
        boolean ready;                                            // the producer is open and the committed offset read
        final List<KafkaConsumerRecord<byte[], byte[]>> early = new ArrayList<>(); // records that came before that
        long answeredUpTo = -1;                                   // the last owner answered the offsets up to here ...
        final TreeSet<Long> redo = new TreeSet<>();               // ... except these
        String metadata = "";                                     // committed with the offset

        /** Records to answer that were neither taken nor answered yet (left by the last owner, not read again yet). */
        SortedSet<Long> unreadRedo() {
            return redo.tailSet(highest + 1);
        }
    }

    /** The record being answered: where it is in Kafka, and the assignment of its partition that took it. */
    private record Origin(TopicPartition tp, long offset, PartitionState partition) {}

    /**
     * @param store           the cluster's memory of requests (identity, redeliveries); null: none
     * @param recordsInFlight the cluster's markers of records in hand (poison records across nodes); null: none
     * @param clusterSize     how many nodes the cluster has now (this one included)
     */
    public KafkaIngressVerticle(ServiceConfig config, String bootstrapServers, ServiceMetrics metrics, RequestDecoder decoder,
                                io.blip2stream.cluster.RequestStore store, io.blip2stream.cluster.RecordsInFlight recordsInFlight,
                                java.util.function.IntSupplier clusterSize) {
        this.recordsInFlight = recordsInFlight;
        this.clusterSize = clusterSize;
        // opened here, on the deploying thread: it reads the last run's journal (what this node died with)
        this.journal = io.blip2stream.service.kafka.CrashJournal.open(config.dataDir().resolve("crashes"),
                config.kafka().groupId() + "-" + config.nodeId() + "-" + config.cluster().port());
        this.store = store;
        this.config = config;
        this.bootstrapServers = bootstrapServers;
        this.metrics = metrics;
        this.decoder = decoder;
    }

    @Override
    public Future<?> start() {
        ServiceConfig.Kafka k = config.kafka();
        Map<String, String> c = IngressSettings.consumer(k, bootstrapServers);
        if (k.exactlyOnce()) {
            transactions = new io.blip2stream.service.kafka.PartitionTransactions(vertx, IngressSettings.producer(k, bootstrapServers),
                    k.groupId(), k.groupId());
            admin = org.apache.kafka.clients.admin.Admin.create(new HashMap<>(k.admin(bootstrapServers, Map.of())));
        }
        answerer = new RecordAnswerer(vertx, context, config, metrics, decoder, store);
        guard = new RedeliveryGuard(journal, recordsInFlight, k.poisonAfterCrashes(), context);
        consumer = KafkaConsumer.create(vertx, c);
        consumer.exceptionHandler(e -> LOG.warn("Kafka consumer error: {}", e.toString()));
        consumer.partitionsAssignedHandler(this::assigned);
        consumer.partitionsRevokedHandler(this::revoked);
        consumer.handler(this::take);
        commitTimer = vertx.setPeriodic(Math.max(10, k.commitIntervalMs()), t -> commit());
        vertx.setPeriodic(5000, t -> updateLag());
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
        if (!firstAssignment.future().isComplete()
                && assigned.stream().allMatch(tp -> partitions.get(tp) == null || transactions == null || partitions.get(tp).ready)) {
            firstAssignment.tryComplete();
        }
    }

    private void assigned(Set<TopicPartition> tps) {
        assigned.addAll(tps);
        for (TopicPartition tp : tps) {
            if (transactions == null) {
                partitions.computeIfAbsent(tp, x -> new PartitionState());
            } else {
                PartitionState p = new PartitionState();
                partitions.put(tp, p);
                openTransactions(tp, p, 0);
            }
        }
        LOG.info("assigned {}; owns {}", tps, assigned);
        applyLimits();
        checkFirstAssignment();
    }

    private void revoked(Set<TopicPartition> tps) {
        if (transactions == null) {
            commit(); // what is done so far
        } else {
            for (TopicPartition tp : tps) {
                PartitionState p = partitions.remove(tp);
                if (p != null && p.txn != null) {
                    p.txn.close(); // commits what is answered; what is still in flight is the next owner's
                }
            }
        }
        assigned.removeAll(tps);
        LOG.info("revoked {}; owns {}", tps, assigned);
    }

    /**
     * Exactly-once: opens the partition's transactional producer (which fences its last owner and aborts what that
     * left open), then reads the committed offset and its metadata (which records above it were answered already),
     * then takes the records that came meanwhile.
     */
    private void openTransactions(TopicPartition tp, PartitionState p, int attempt) {
        org.apache.kafka.common.TopicPartition ktp = new org.apache.kafka.common.TopicPartition(tp.getTopic(), tp.getPartition());
        transactions.open(ktp, offsets(p))
                .compose(txn -> {
                    if (partitions.get(tp) != p) {
                        txn.close(); // revoked meanwhile
                        return Future.failedFuture("revoked");
                    }
                    p.txn = txn;
                    txn.onFatal(e -> transactionsEnded(tp, p, e));
                    // the consumer's own committed() does not answer while the partition is paused; an admin
                    // client reads it, stable: after any transaction still open on it ended
                    return vertx.executeBlocking(() -> admin.listConsumerGroupOffsets(
                                    Map.of(config.kafka().groupId(), new org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec()
                                            .topicPartitions(List.of(ktp))),
                                    new org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions().requireStable(true))
                            .partitionsToOffsetAndMetadata(config.kafka().groupId()).get(30, TimeUnit.SECONDS).get(ktp), false);
                })
                .onSuccess(committed -> {
                    if (partitions.get(tp) != p) {
                        return;
                    }
                    loadCommitted(tp, p, committed);
                    p.ready = true;
                    applyLimits();
                    checkFirstAssignment();
                    List<KafkaConsumerRecord<byte[], byte[]>> early = new ArrayList<>(p.early);
                    p.early.clear();
                    early.forEach(this::take);
                })
                .onFailure(e -> {
                    if (partitions.get(tp) != p || "revoked".equals(e.getMessage())) {
                        return;
                    }
                    LOG.warn("{}: could not open its transactions (attempt {}): {}", tp, attempt + 1, e.toString());
                    if (p.txn != null) {
                        p.txn.close();
                        p.txn = null;
                    }
                    vertx.setTimer(Math.min(5000, 250L << Math.min(attempt, 5)), t -> {
                        if (partitions.get(tp) == p) {
                            openTransactions(tp, p, attempt + 1);
                        }
                    });
                });
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
    private void transactionsEnded(TopicPartition tp, PartitionState p, Throwable e) {
        if (stopping || rejoining || partitions.get(tp) != p) {
            return;
        }
        rejoining = true;
        LOG.warn("{}: its transactions ended while this node owns it ({}): leaving the consumer group and joining again",
                tp, e.toString());
        consumer.unsubscribe()
                .compose(v -> {
                    if (!assigned.isEmpty()) {
                        revoked(new HashSet<>(assigned)); // in case the consumer did not report the revocation
                    }
                    return stopping ? Future.<Void>succeededFuture() : consumer.subscribe(config.kafka().topics().requests());
                })
                .onComplete(ar -> {
                    rejoining = false;
                    if (ar.failed()) {
                        LOG.error("could not join the consumer group again: {}", ar.cause().toString());
                    }
                });
    }

    private void loadCommitted(TopicPartition tp, PartitionState p, org.apache.kafka.clients.consumer.OffsetAndMetadata committed) {
        if (committed == null) {
            LOG.info("{}: no committed offset", tp);
            return; // nothing committed: auto.offset.reset applies
        }
        long next = committed.offset();
        p.highest = next - 1;
        p.committed = next;
        p.metadata = committed.metadata() == null ? "" : committed.metadata();
        var progress = io.blip2stream.service.kafka.PartitionProgress.parse(next, p.metadata);
        p.answeredUpTo = progress.answeredUpTo();
        p.redo.addAll(progress.unanswered());
        LOG.info("{}: committed offset {}, answered up to {} except {}", tp, next, p.answeredUpTo, p.redo);
    }

    /**
     * What to commit with a transaction: the lowest offset not answered, and which records above it are. Records
     * answer out of order (short ones overtake long ones), so the offset alone would have them answered again.
     */
    private io.blip2stream.service.kafka.PartitionTransactions.Offsets offsets(PartitionState p) {
        return new io.blip2stream.service.kafka.PartitionTransactions.Offsets() {
            @Override
            public org.apache.kafka.clients.consumer.OffsetAndMetadata next(Set<Long> committing) {
                if (!p.ready || p.highest < 0) {
                    return null;
                }
                TreeSet<Long> open = new TreeSet<>(p.pending);
                open.removeAll(committing);
                open.addAll(p.unreadRedo());
                io.blip2stream.service.kafka.PartitionProgress progress =
                        io.blip2stream.service.kafka.PartitionProgress.of(p.highest, open, p.answeredUpTo);
                String metadata = progress.metadata();
                if (committing.isEmpty() && progress.next() == p.committed && metadata.equals(p.metadata)) {
                    return null;
                }
                return new org.apache.kafka.clients.consumer.OffsetAndMetadata(progress.next(), metadata);
            }

            @Override
            public void committed(org.apache.kafka.clients.consumer.OffsetAndMetadata offset, Set<Long> answered) {
                p.pending.removeAll(answered); // done now, whatever else their answer waits on
                if (offset != null) {
                    p.committed = offset.offset();
                    p.metadata = offset.metadata();
                }
            }
        };
    }

    // ---- one record

    /**
     * Takes a record in: its offset pending and a place in flight, then {@link RecordAnswerer} answers it. Whatever
     * happens, the place is given back; the offset is done unless the answer could not be written (then the record
     * is read again).
     */
    private void take(KafkaConsumerRecord<byte[], byte[]> kafkaRecord) {
        ConsumerRecord<byte[], byte[]> record = kafkaRecord.record(); // Kafka's own: null header values are fine there
        TopicPartition tp = new TopicPartition(record.topic(), record.partition());
        PartitionState p = transactions == null ? partitions.computeIfAbsent(tp, x -> new PartitionState()) : partitions.get(tp);
        if (p == null) {
            return; // exactly-once: revoked while the record was on its way; its next owner reads it
        }
        if (transactions != null && !p.ready) {
            p.early.add(kafkaRecord); // taken once the transactions are open and the committed offset is known
            return;
        }
        long offset = record.offset();
        if (offset <= p.highest) {
            return; // answered or in flight already (read again after a rebalance)
        }
        if (offset <= p.answeredUpTo && !p.redo.contains(offset)) {
            p.highest = offset; // its answer is on Kafka, committed by the partition's last owner
            return;
        }
        p.pending.add(offset);
        p.highest = Math.max(p.highest, offset);
        inFlight++;
        metrics.inFlight().set(inFlight);
        applyLimits();
        Origin source = new Origin(tp, offset, p);
        String where = RecordAnswerer.where(record);
        long accepted = System.nanoTime();
        guard.taken(where); // before anything runs on it: if this node dies now, the record was in its hands
        guard.crashes(where).onComplete(c -> {
            int crashes = c.succeeded() ? c.result() : 0;
            RecordAnswerer.Output out = r -> publish(source, r);
            switch (guard.admit(where, crashes, alone -> answered(record, p, where, answer(record, accepted, out), alone),
                    () -> finish(p, offset, false))) {
                case QUARANTINE -> answered(record, p, where, answerer.quarantine(record, crashes, out), false);
                case RUN -> answered(record, p, where, answer(record, accepted, out), false);
                case WAIT -> applyLimits(); // a suspect pauses every partition
            }
            guard.runIfClear(inFlight); // this record's place is known now: a suspect may be clear to run
        });
    }

    private Future<Void> answer(ConsumerRecord<byte[], byte[]> record, long accepted, RecordAnswerer.Output out) {
        try {
            return answerer.answer(record, accepted, out);
        } catch (RuntimeException e) {
            return Future.failedFuture(e);
        }
    }

    /** A record's answer settled: its place is given back, and it is out of this node's hands. */
    private void answered(ConsumerRecord<byte[], byte[]> record, PartitionState p, String where, Future<Void> answered, boolean wasAlone) {
        TopicPartition tp = new TopicPartition(record.topic(), record.partition());
        long offset = record.offset();
        answered.onComplete(ar -> {
            guard.done(where, wasAlone);
            if (ar.failed()) {
                // the output could not be written: keep the offset pending, so the record is read again
                if (transactions != null && partitions.get(tp) != p) {
                    LOG.info("record {}-{}@{}: the partition moved before its answer was committed; its new owner answers it",
                            record.topic(), record.partition(), offset);
                } else {
                    LOG.error("record {}-{}@{} is not answered and will be read again after a restart: {}",
                            record.topic(), record.partition(), offset, ar.cause().toString());
                }
                finish(p, offset, false);
            } else {
                finish(p, offset, true);
            }
        });
    }

    /**
     * Writes an output: with exactly-once output in the partition's next transaction (completes when it committed),
     * else through the result publisher (completes when Kafka acknowledged it). Fails with
     * {@link RecordAnswerer.RecordRefused} when Kafka refused the record itself, else with
     * {@link RecordAnswerer.NotPublished}.
     */
    private Future<Void> publish(Origin source, OutboundRecord r) {
        if (transactions != null) {
            PartitionState p = source.partition();
            if (partitions.get(source.tp()) != p || p.txn == null) {
                return Future.failedFuture(new RecordAnswerer.NotPublished(new IllegalStateException(source.tp() + " was revoked")));
            }
            return p.txn.send(source.offset(), r).recover(e -> Future.failedFuture(
                    e instanceof io.blip2stream.service.kafka.PartitionTransactions.RecordRefusedException
                            ? new RecordAnswerer.RecordRefused(e.getMessage()) : new RecordAnswerer.NotPublished(e)));
        }
        return vertx.eventBus().request(Addresses.PUBLISH, r, Addresses.local(120_000)).<Void>mapEmpty().recover(e -> Future.failedFuture(
                e instanceof ReplyException re && re.failureCode() == ResultPublisherVerticle.RECORD_REFUSED
                        ? new RecordAnswerer.RecordRefused(re.getMessage()) : new RecordAnswerer.NotPublished(e)));
    }

    // ---- offsets and flow control

    private void finish(PartitionState p, long offset, boolean answered) {
        inFlight--;
        metrics.inFlight().set(inFlight);
        if (answered) {
            p.pending.remove(offset);
        }
        applyLimits();
    }

    /** Pauses partitions over their bound (all of them over the total bound) and resumes the others. */
    private void applyLimits() {
        if (consumer == null) {
            return;
        }
        ServiceConfig.Kafka k = config.kafka();
        boolean totalFull = inFlight >= k.maxInFlight();
        Set<TopicPartition> pause = new HashSet<>();
        Set<TopicPartition> resume = new HashSet<>();
        for (TopicPartition tp : assigned) {
            PartitionState p = partitions.get(tp);
            if (p == null) {
                continue;
            }
            // exactly-once: paused until its transactions are open and its committed offset is read
            boolean full = (transactions != null && !p.ready) || stopping || totalFull || p.pending.size() >= k.maxInFlightPerPartition()
                    || guard.pausesAll();
            if (full && !p.paused) {
                pause.add(tp);
                p.paused = true;
            } else if (!full && p.paused) {
                resume.add(tp);
                p.paused = false;
            }
        }
        if (!pause.isEmpty()) {
            consumer.pause(pause);
        }
        if (!resume.isEmpty()) {
            consumer.resume(resume);
        }
        guard.runIfClear(inFlight); // a suspect may be clear to run, or what waited behind the suspects
    }

    /**
     * Commits, per assigned partition, the lowest offset not yet answered. With exactly-once output offsets go in
     * transactions: here only those that moved without an output (records answered by the last owner).
     */
    private Future<Void> commit() {
        if (transactions != null) {
            for (PartitionState p : partitions.values()) {
                if (p.ready && p.txn != null) {
                    p.txn.commit();
                }
            }
            return Future.succeededFuture();
        }
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (TopicPartition tp : assigned) {
            PartitionState p = partitions.get(tp);
            if (p == null || p.highest < 0) {
                continue;
            }
            long next = p.pending.isEmpty() ? p.highest + 1 : p.pending.first();
            if (next > p.committed) {
                offsets.put(tp, new OffsetAndMetadata(next, ""));
                p.committed = next;
            }
        }
        if (offsets.isEmpty() || consumer == null) {
            return Future.succeededFuture();
        }
        return consumer.commit(offsets).<Void>mapEmpty().onFailure(e -> {
            LOG.warn("commit failed: {}", e.toString());
            for (TopicPartition tp : offsets.keySet()) {
                PartitionState p = partitions.get(tp);
                if (p != null) {
                    p.committed = -1; // try again next time
                }
            }
        });
    }

    /** Whether other nodes are in the cluster now (which can take this node's partitions over). */
    private boolean othersInCluster() {
        try {
            return clusterSize.getAsInt() > 1;
        } catch (RuntimeException e) { // the cluster stopping under us: no one to hand over to
            return false;
        }
    }

    private void updateLag() {
        if (consumer == null || assigned.isEmpty()) {
            return;
        }
        Set<TopicPartition> tps = new HashSet<>(assigned);
        for (TopicPartition tp : tps) {
            consumer.endOffsets(tp).onSuccess(end -> {
                PartitionState p = partitions.get(tp);
                long done = p == null ? 0 : Math.max(0, p.committed);
                metrics.lag(tp.getTopic() + "-" + tp.getPartition(), Math.max(0, end - done));
            });
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
        if (guard != null) {
            guard.handBackAll(); // read again by whoever owns their partitions next
        }
        applyLimits();
        Future<Void> handedOver = transactions == null || store == null || !othersInCluster() ? Future.succeededFuture() : consumer.unsubscribe()
                .map(v -> {
                    if (!assigned.isEmpty()) {
                        revoked(new HashSet<>(assigned)); // in case the consumer did not report the revocation
                    }
                    return (Void) null;
                })
                .recover(e -> {
                    LOG.warn("leaving the consumer group before the drain failed: {}", e.toString());
                    return Future.succeededFuture();
                });
        Promise<Void> drained = Promise.promise();
        long deadline = System.currentTimeMillis() + config.drainTimeoutMs();
        long[] poll = new long[1];
        poll[0] = vertx.setPeriodic(20, t -> {
            if (inFlight <= 0 || System.currentTimeMillis() > deadline) {
                vertx.cancelTimer(poll[0]);
                if (inFlight > 0) {
                    LOG.warn("{} requests still in flight after {} ms; their offsets stay uncommitted and they will be read again",
                            inFlight, config.drainTimeoutMs());
                }
                drained.tryComplete();
            }
        });
        return handedOver.compose(v -> drained.future())
                .compose(v -> commit())
                .compose(v -> {
                    // exactly-once: the last offsets in a transaction each, then the producers close
                    List<Future<Void>> closed = new ArrayList<>();
                    for (PartitionState p : partitions.values()) {
                        if (p.txn != null) {
                            closed.add(p.txn.close());
                        }
                    }
                    return Future.join(closed).<Void>mapEmpty().recover(e -> Future.succeededFuture());
                })
                .eventually(() -> {
                    vertx.cancelTimer(commitTimer);
                    journal.close(); // a graceful stop: what is still in hand is handed back, not a crash
                    if (admin == null) {
                        return consumer.close();
                    }
                    // closing the admin client waits on its network thread: not on the event loop
                    return vertx.<Void>executeBlocking(() -> {
                        admin.close(java.time.Duration.ofSeconds(2));
                        return null;
                    }, false).<Void>transform(ar -> consumer.close());
                });
    }
}
