package io.blip2stream.service.kafka;

import io.blip2stream.service.bus.OutboundRecord;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Exactly-once output for records read from Kafka: the outputs of an input partition's records and that
 * partition's consumed offset are committed in one Kafka transaction, so a {@code read_committed} consumer sees
 * each answer once, or not at all while its transaction is open.
 *
 * <p>One transactional producer per input partition, its {@code transactional.id} naming the partition (the
 * pattern of Kafka Streams before KIP-447): whoever owns the partition next calls {@code initTransactions} with
 * the same id, which aborts a transaction the last owner left open (it crashed) and fences that owner (it lost the
 * partition while still running, a zombie): its next commit fails, and its outputs are never seen.
 *
 * <p>Transactions are as small and as frequent as the answers: an answer waits {@link #LINGER_MS} for others (the
 * rows of a decode batch that finish at the same step come within a millisecond or two of each other, and would
 * otherwise go out one transaction, tens of milliseconds, apart); when one commits, the answers that came in
 * meanwhile go out in the next. All methods are called on the owner's event loop; the producers' blocking calls run
 * on worker threads, one transaction at a time per partition.
 */
public final class PartitionTransactions {
    private static final Logger LOG = LoggerFactory.getLogger(PartitionTransactions.class);

    /** The owner's bookkeeping: what offset to commit, given the offsets whose outputs are in this transaction. */
    public interface Offsets {
        /** @return the offset and metadata to commit, or null when nothing changed since the last commit */
        OffsetAndMetadata next(Set<Long> committing);

        /**
         * A transaction committed: the outputs of the records at {@code answered}, and {@code offset} (null when it
         * held none).
         */
        void committed(OffsetAndMetadata offset, Set<Long> answered);
    }

    /** How long an answer waits for others to share its transaction. */
    static final long LINGER_MS = 5;

    private final Vertx vertx;
    private final Map<String, Object> producerConfig;
    private final String transactionalIdPrefix;
    private final ConsumerGroupMetadata group;

    /**
     * @param producerConfig        bootstrap servers and extra producer properties (serializers and transactions are
     *                              set here)
     * @param transactionalIdPrefix the first part of every transactional.id: {@code prefix-topic-partition}
     */
    public PartitionTransactions(Vertx vertx, Map<String, String> producerConfig, String transactionalIdPrefix, String groupId) {
        this.vertx = vertx;
        this.producerConfig = new HashMap<>(producerConfig);
        this.producerConfig.put("acks", "all");
        this.producerConfig.put("enable.idempotence", "true");
        this.producerConfig.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        this.producerConfig.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        this.producerConfig.putIfAbsent("max.request.size", String.valueOf(32 << 20));
        this.producerConfig.putIfAbsent("compression.type", "lz4");
        this.producerConfig.putIfAbsent("transaction.timeout.ms", "30000");
        this.transactionalIdPrefix = transactionalIdPrefix;
        // the group id alone: fencing is by transactional.id, one per partition
        this.group = new ConsumerGroupMetadata(groupId);
    }

    /** The transactional.id of an input partition's producer. */
    public String transactionalId(TopicPartition tp) {
        return transactionalIdPrefix + "-" + tp.topic() + "-" + tp.partition();
    }

    /**
     * Opens the partition's producer: {@code initTransactions} aborts what the partition's last owner left open and
     * fences it. Only then may the committed offset be read and records be taken.
     */
    public Future<Partition> open(TopicPartition tp, Offsets offsets) {
        Partition p = new Partition(tp, offsets);
        Map<String, Object> c = new HashMap<>(producerConfig);
        c.put("transactional.id", transactionalId(tp));
        c.put("client.id", transactionalId(tp) + "-" + Integer.toHexString(System.identityHashCode(p)));
        return vertx.executeBlocking(() -> {
            KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(c);
            try {
                producer.initTransactions();
            } catch (RuntimeException e) {
                producer.close(Duration.ZERO);
                throw e;
            }
            return producer;
        }, false).map(producer -> {
            p.producer = producer;
            return p;
        });
    }

    /** One input partition's transactions, for as long as this node owns the partition. */
    public final class Partition {
        final TopicPartition tp;
        final Offsets offsets;
        KafkaProducer<byte[], byte[]> producer;
        private final List<Pending> queue = new ArrayList<>();
        private boolean busy;
        private boolean lingering;
        private boolean closed;
        private Promise<Void> closing;
        private java.util.function.Consumer<Throwable> onFatal = e -> { };

        private record Pending(long offset, OutboundRecord record, Promise<Void> done) {}

        Partition(TopicPartition tp, Offsets offsets) {
            this.tp = tp;
            this.offsets = offsets;
        }

        public boolean closed() {
            return closed;
        }

        /**
         * Called (on the owner's event loop) when the transactions end for good while the partition was not being
         * closed: the producer was fenced or failed. Not called after {@link #close}.
         */
        public void onFatal(java.util.function.Consumer<Throwable> handler) {
            this.onFatal = handler;
        }

        /**
         * Writes {@code record} as the output of the input record at {@code offset}, in the next transaction.
         * Completes when that transaction committed; fails when the partition was lost first (then the record is
         * the next owner's to answer).
         */
        public Future<Void> send(long offset, OutboundRecord record) {
            if (closed) {
                return Future.failedFuture(new KafkaException(tp + " is no longer this node's"));
            }
            Promise<Void> done = Promise.promise();
            queue.add(new Pending(offset, record, done));
            if (!busy && !lingering) {
                lingering = true;
                vertx.setTimer(LINGER_MS, t -> {
                    lingering = false;
                    commit();
                });
            }
            return done.future();
        }

        /** Commits what is queued, or the offset alone if it moved (records that needed no output). */
        public void commit() {
            if (busy || closed || producer == null) {
                return;
            }
            List<Pending> batch = new ArrayList<>(queue);
            Set<Long> committing = new HashSet<>();
            for (Pending q : batch) {
                committing.add(q.offset());
            }
            OffsetAndMetadata offset = offsets.next(committing);
            if (batch.isEmpty() && offset == null) {
                return;
            }
            queue.clear();
            busy = true;
            KafkaProducer<byte[], byte[]> pr = producer;
            List<java.util.concurrent.Future<org.apache.kafka.clients.producer.RecordMetadata>> sends = new ArrayList<>();
            vertx.executeBlocking(() -> {
                pr.beginTransaction();
                for (Pending q : batch) {
                    try {
                        sends.add(pr.send(record(q.record()))); // commitTransaction flushes, and fails if a send failed
                    } catch (KafkaException e) {
                        sends.add(java.util.concurrent.CompletableFuture.failedFuture(e)); // refused before it was sent
                        throw e;
                    }
                }
                if (offset != null) {
                    pr.sendOffsetsToTransaction(Map.of(tp, offset), group);
                }
                pr.commitTransaction();
                return null;
            }, false).onComplete(ar -> {
                busy = false;
                if (ar.succeeded()) {
                    offsets.committed(offset, committing);
                    batch.forEach(q -> q.done().complete());
                    if (!queue.isEmpty()) {
                        commit();
                    }
                } else if (fatal(ar.cause())) {
                    LOG.warn("{}: transactions ended ({}): another node owns the partition now, or the producer failed",
                            tp, ar.cause().toString());
                    batch.forEach(q -> q.done().fail(ar.cause()));
                    boolean closingAnyway = closing != null;
                    shutdown();
                    if (!closingAnyway) {
                        onFatal.accept(ar.cause());
                    }
                } else {
                    // abortable: abort, then try the same outputs again, but for those Kafka refused themselves (too
                    // large, invalid): they fail alone, or they would fail every transaction after this one
                    List<Pending> retry = new ArrayList<>(batch.size());
                    for (int k = 0; k < batch.size(); k++) {
                        Throwable refused = k < sends.size() ? refusal(sends.get(k)) : null;
                        if (refused != null) {
                            batch.get(k).done().fail(new RecordRefusedException(refused));
                        } else {
                            retry.add(batch.get(k));
                        }
                    }
                    batch.clear();
                    batch.addAll(retry);
                    LOG.warn("{}: transaction of {} outputs failed, retrying: {}", tp, batch.size(), ar.cause().toString());
                    busy = true;
                    vertx.executeBlocking(() -> {
                        pr.abortTransaction();
                        return null;
                    }, false).onComplete(ab -> {
                        busy = false;
                        queue.addAll(0, batch);
                        if (ab.failed()) {
                            boolean closingAnyway = closing != null;
                            shutdown();
                            if (!closingAnyway) {
                                onFatal.accept(ab.cause());
                            }
                        } else {
                            vertx.setTimer(200, t -> commit());
                        }
                    });
                }
                if (!busy && closing != null && queue.isEmpty()) {
                    shutdown();
                }
            });
        }

        /** Commits what is queued, then closes the producer (the partition was revoked, or the node stops). */
        public Future<Void> close() {
            if (closing == null) {
                closing = Promise.promise();
                commit();
                if (!busy) {
                    shutdown();
                }
            }
            return closing.future();
        }

        /** Closes the producer now; what is queued fails (the next owner answers it). */
        private void shutdown() {
            if (closed) {
                return;
            }
            closed = true;
            List<Pending> left = new ArrayList<>(queue);
            queue.clear();
            left.forEach(q -> q.done().fail(new KafkaException(tp + " is no longer this node's")));
            if (closing == null) {
                closing = Promise.promise();
            }
            KafkaProducer<byte[], byte[]> pr = producer;
            Promise<Void> done = closing;
            if (pr == null) {
                done.tryComplete();
                return;
            }
            vertx.<Void>executeBlocking(() -> {
                pr.close(Duration.ofSeconds(5));
                return null;
            }, false).onComplete(ar -> done.tryComplete());
        }
    }

    /** Kafka refused an output record itself (too large, invalid, not serializable): sending it again cannot help. */
    public static final class RecordRefusedException extends KafkaException {
        RecordRefusedException(Throwable cause) {
            super("Kafka refused the record: " + cause, cause);
        }
    }

    /** Whether a send failed because of the record itself. */
    public static boolean refusesRecord(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof org.apache.kafka.common.errors.RecordTooLargeException
                    || c instanceof org.apache.kafka.common.errors.RecordBatchTooLargeException
                    || c instanceof org.apache.kafka.common.InvalidRecordException
                    || c instanceof org.apache.kafka.common.errors.SerializationException) {
                return true;
            }
        }
        return false;
    }

    /** The failure of a send that Kafka refused for the record itself, or null (it went, or failed otherwise). */
    private static Throwable refusal(java.util.concurrent.Future<?> send) {
        if (!send.isDone()) {
            return null;
        }
        try {
            send.get();
            return null;
        } catch (java.util.concurrent.ExecutionException e) {
            return refusesRecord(e.getCause()) ? e.getCause() : null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    private static ProducerRecord<byte[], byte[]> record(OutboundRecord r) {
        ProducerRecord<byte[], byte[]> pr = new ProducerRecord<>(r.topic(), r.key(), r.value());
        for (OutboundRecord.Header h : r.headers()) {
            pr.headers().add(new RecordHeader(h.name(), h.value()));
        }
        return pr;
    }

    /** Errors after which the producer cannot go on (Kafka's producer documentation lists them). */
    static boolean fatal(Throwable e) {
        Throwable c = e;
        while (c != null) {
            if (c instanceof ProducerFencedException || c instanceof InvalidProducerEpochException
                    || c instanceof OutOfOrderSequenceException || c instanceof AuthorizationException
                    || c instanceof UnsupportedVersionException || c instanceof IllegalStateException) {
                return true;
            }
            c = c.getCause();
        }
        return false;
    }
}
