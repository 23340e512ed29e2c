package io.blip2stream.service.kafka;

import io.blip2stream.service.metrics.ServiceMetrics;
import io.vertx.kafka.client.common.TopicPartition;
import io.vertx.kafka.client.consumer.KafkaConsumer;
import io.vertx.kafka.client.consumer.OffsetAndMetadata;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The ingress's ledger: the partitions this node owns, each one's {@link PartitionOffsets}, and the records in hand.
 * It bounds the work in flight, per partition and in all, by pausing and resuming partitions (never the whole
 * stream, so the consumer keeps polling and stays in its group). Records already fetched when a partition is paused
 * are still taken, so a partition may exceed its bound by at most {@code max.poll.records}.
 *
 * <p>Used on the ingress's event loop only.
 */
final class PartitionLedger {
    private static final Logger LOG = LoggerFactory.getLogger(PartitionLedger.class);
    private final Map<TopicPartition, PartitionOffsets> partitions = new HashMap<>();
    private final Set<TopicPartition> assigned = new HashSet<>();
    private final ServiceMetrics metrics;
    private final int maxInFlight;
    private final int maxInFlightPerPartition;
    private int inFlight;

    PartitionLedger(ServiceMetrics metrics, int maxInFlight, int maxInFlightPerPartition) {
        this.metrics = metrics;
        this.maxInFlight = maxInFlight;
        this.maxInFlightPerPartition = maxInFlightPerPartition;
    }

    // ---- ownership

    /**
     * Partitions assigned to this node. The consumer reads an assigned partition until told otherwise, even one it
     * had paused before it lost it (its state starts afresh): offsets kept from an earlier assignment say so too.
     */
    void assign(Set<TopicPartition> tps) {
        assigned.addAll(tps);
        for (TopicPartition tp : tps) {
            PartitionOffsets p = partitions.get(tp);
            if (p != null) {
                p.paused = false;
            }
        }
    }

    void unassign(Set<TopicPartition> tps) {
        assigned.removeAll(tps);
    }

    Set<TopicPartition> assigned() {
        return new HashSet<>(assigned);
    }

    /** The partition's offsets, or null when this node has none for it. */
    PartitionOffsets get(TopicPartition tp) {
        return partitions.get(tp);
    }

    /** The partition's offsets, made (ready) the first time. */
    PartitionOffsets getOrOpen(TopicPartition tp) {
        return partitions.computeIfAbsent(tp, x -> new PartitionOffsets(true));
    }

    /** A new assignment of the partition: fresh offsets, ready when {@code ready} says. */
    PartitionOffsets open(TopicPartition tp, boolean ready) {
        PartitionOffsets p = new PartitionOffsets(ready);
        partitions.put(tp, p);
        return p;
    }

    PartitionOffsets remove(TopicPartition tp) {
        return partitions.remove(tp);
    }

    /** Whether {@code p} is still this node's current assignment of {@code tp}. */
    boolean owns(TopicPartition tp, PartitionOffsets p) {
        return partitions.get(tp) == p;
    }

    List<PartitionOffsets> all() {
        return new ArrayList<>(partitions.values());
    }

    /** Whether every assigned partition is ready to take records. */
    boolean allReady() {
        return assigned.stream().allMatch(tp -> partitions.get(tp) == null || partitions.get(tp).ready);
    }

    // ---- records in hand

    int inFlight() {
        return inFlight;
    }

    /** The record at {@code offset} is in hand: pending in its partition, a place in flight taken. */
    void taken(PartitionOffsets p, long offset) {
        p.take(offset);
        inFlight++;
        metrics.inFlight().set(inFlight);
    }

    /** A record is out of hand: its place given back; its offset done if it was answered, else read again later. */
    void finished(PartitionOffsets p, long offset, boolean answered) {
        inFlight--;
        metrics.inFlight().set(inFlight);
        if (answered) {
            p.pending.remove(offset);
        }
    }

    /**
     * Pauses the partitions over their bound (all of them over the total bound, or when {@code pauseAll}; a
     * partition also while it is not ready) and resumes the others.
     *
     * <p>Each partition is paused or resumed by a call of its own: the consumer applies a set one partition at a
     * time and stops at the first it no longer owns (a rebalance on its thread can overtake a call made here), which
     * would leave the rest of the set as it was while this ledger believed it changed: a partition paused for good.
     * A call that fails leaves its partition as it was, and {@code again} is called to try once more.
     */
    void applyLimits(KafkaConsumer<byte[], byte[]> consumer, boolean pauseAll, Runnable again) {
        boolean totalFull = pauseAll || inFlight >= maxInFlight;
        for (TopicPartition tp : assigned) {
            PartitionOffsets p = partitions.get(tp);
            if (p == null) {
                continue;
            }
            boolean full = totalFull || !p.ready || p.pending.size() >= maxInFlightPerPartition;
            if (full != p.paused) {
                p.paused = full;
                (full ? consumer.pause(tp) : consumer.resume(tp)).onFailure(e -> {
                    if (partitions.get(tp) == p && assigned.contains(tp) && p.paused == full) {
                        LOG.warn("{}: could not {} it ({}); trying again", tp, full ? "pause" : "resume", e.toString());
                        p.paused = !full;
                        again.run();
                    }
                });
            }
        }
    }

    /**
     * Makes the consumer's paused partitions what this ledger says they are, wherever they differ (a safety net: a
     * partition paused by mistake would otherwise never be read again).
     */
    void reconcile(KafkaConsumer<byte[], byte[]> consumer) {
        Map<TopicPartition, Boolean> asked = new HashMap<>(); // what the ledger said when it asked
        for (TopicPartition tp : assigned) {
            PartitionOffsets p = partitions.get(tp);
            if (p != null) {
                asked.put(tp, p.paused);
            }
        }
        consumer.paused().onSuccess(paused -> asked.forEach((tp, wanted) -> {
            PartitionOffsets p = partitions.get(tp);
            // only where nothing changed meanwhile (a call made since is on its way, after the answer)
            if (p != null && assigned.contains(tp) && p.paused == wanted && wanted != paused.contains(tp)) {
                LOG.warn("{}: the consumer had it {}, the ledger {}: {} it", tp, wanted ? "reading" : "paused",
                        wanted ? "paused" : "reading", wanted ? "pausing" : "resuming");
                (wanted ? consumer.pause(tp) : consumer.resume(tp)).onFailure(e -> LOG.debug("{}: {}", tp, e.toString()));
            }
        }));
    }

    /** With acknowledged output: per assigned partition, the lowest offset not yet answered, where it moved. */
    Map<TopicPartition, OffsetAndMetadata> toCommit() {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (TopicPartition tp : assigned) {
            PartitionOffsets p = partitions.get(tp);
            long next = p == null ? -1 : p.nextToCommit();
            if (next >= 0) {
                offsets.put(tp, new OffsetAndMetadata(next, ""));
                p.committed = next;
            }
        }
        return offsets;
    }

    /** A commit of {@link #toCommit} failed: those partitions are committed again next time. */
    void commitFailed(Set<TopicPartition> tps) {
        for (TopicPartition tp : tps) {
            PartitionOffsets p = partitions.get(tp);
            if (p != null) {
                p.committed = -1;
            }
        }
    }

    /** Reports each assigned partition's lag (its end offset less what is committed). */
    void updateLag(KafkaConsumer<byte[], byte[]> consumer) {
        for (TopicPartition tp : assigned()) {
            consumer.endOffsets(tp).onSuccess(end -> {
                PartitionOffsets p = partitions.get(tp);
                long done = p == null ? 0 : Math.max(0, p.committed);
                metrics.lag(tp.getTopic() + "-" + tp.getPartition(), Math.max(0, end - done));
            });
        }
    }
}
