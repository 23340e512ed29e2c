package io.blip2stream.service.kafka;

import io.vertx.kafka.client.consumer.KafkaConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeSet;

/**
 * The offsets of one partition this node owns: those taken and not yet answered, and how far it is safe to commit.
 * With exactly-once output, one per assignment (records of an earlier assignment of the same partition are not
 * answered by it), ready once its transactions are open and its committed offset is read; with acknowledged
 * output, one per partition for the node's life, ready at once.
 *
 * <p>Used on the ingress's event loop only.
 */
final class PartitionOffsets {
    final TreeSet<Long> pending = new TreeSet<>(); // taken, not answered yet
    long highest = -1;                             // the highest offset taken
    long committed = -1;                           // the last offset committed (the next one to read)
    boolean paused;
    boolean ready;
    // exactly-once only
    PartitionTransactions.Partition txn;                                      // this assignment's transactions
    final List<KafkaConsumerRecord<byte[], byte[]>> early = new ArrayList<>(); // records that came before it was ready
    long answeredUpTo = -1;                                                   // the last owner answered up to here ...
    final TreeSet<Long> redo = new TreeSet<>();                               // ... except these
    String metadata = "";                                                     // committed with the offset

    PartitionOffsets(boolean ready) {
        this.ready = ready;
    }

    /**
     * Whether the record at {@code offset} is new to this node: not taken before (read again after a rebalance) and
     * not answered by the partition's last owner. An offset answered already counts as taken.
     */
    boolean isNew(long offset) {
        if (offset <= highest) {
            return false;
        }
        if (offset <= answeredUpTo && !redo.contains(offset)) {
            highest = offset; // its answer is on Kafka, committed by the partition's last owner
            return false;
        }
        return true;
    }

    /** The record at {@code offset} is taken: pending until it is answered. */
    void take(long offset) {
        pending.add(offset);
        highest = Math.max(highest, offset);
    }

    /** With acknowledged output: the offset to commit now, or -1 when it has not moved since the last commit. */
    long nextToCommit() {
        if (highest < 0) {
            return -1;
        }
        long next = pending.isEmpty() ? highest + 1 : pending.first();
        return next > committed ? next : -1;
    }

    /** Exactly-once: what the last owner committed (null: nothing; {@code auto.offset.reset} applies). */
    void loadCommitted(OffsetAndMetadata last) {
        if (last == null) {
            return;
        }
        long next = last.offset();
        highest = next - 1;
        committed = next;
        metadata = last.metadata() == null ? "" : last.metadata();
        PartitionProgress progress = PartitionProgress.parse(next, metadata);
        answeredUpTo = progress.answeredUpTo();
        redo.addAll(progress.unanswered());
    }

    /** Records to answer that were neither taken nor answered yet (left by the last owner, not read again yet). */
    private SortedSet<Long> unreadRedo() {
        return redo.tailSet(highest + 1);
    }

    /**
     * What to commit with a transaction: the lowest offset not answered, and which records above it are. Records
     * answer out of order (short ones overtake long ones), so the offset alone would have them answered again.
     */
    PartitionTransactions.Offsets transactionOffsets() {
        return new PartitionTransactions.Offsets() {
            @Override
            public OffsetAndMetadata next(Set<Long> committing) {
                if (!ready || highest < 0) {
                    return null;
                }
                TreeSet<Long> open = new TreeSet<>(pending);
                open.removeAll(committing);
                open.addAll(unreadRedo());
                PartitionProgress progress = PartitionProgress.of(highest, open, answeredUpTo);
                String next = progress.metadata();
                if (committing.isEmpty() && progress.next() == committed && next.equals(metadata)) {
                    return null;
                }
                return new OffsetAndMetadata(progress.next(), next);
            }

            @Override
            public void committed(OffsetAndMetadata offset, Set<Long> answered) {
                pending.removeAll(answered); // done now, whatever else their answer waits on
                if (offset != null) {
                    committed = offset.offset();
                    metadata = offset.metadata();
                }
            }
        };
    }
}
