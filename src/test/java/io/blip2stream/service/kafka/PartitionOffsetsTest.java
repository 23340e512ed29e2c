package io.blip2stream.service.kafka;

import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.junit.jupiter.api.Test;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ingress's per-partition bookkeeping: which records are new, and what offset each kind of output commits. */
class PartitionOffsetsTest {

    @Test
    void aRecordIsNewOnceAndAcknowledgedOutputCommitsTheLowestUnanswered() {
        PartitionOffsets p = new PartitionOffsets(true);
        assertEquals(-1, p.nextToCommit(), "nothing taken: nothing to commit");
        for (long o = 10; o <= 13; o++) {
            assertTrue(p.isNew(o));
            p.take(o);
        }
        assertFalse(p.isNew(12), "read again after a rebalance: not taken twice");
        assertEquals(10, p.nextToCommit(), "10 is still pending");
        p.pending.remove(11L); // 11 answered before 10: the offset cannot pass 10
        p.committed = p.nextToCommit();
        assertEquals(-1, p.nextToCommit(), "nothing moved since the last commit");
        p.pending.remove(10L);
        assertEquals(12, p.nextToCommit(), "10 and 11 answered");
        p.pending.remove(12L);
        p.pending.remove(13L);
        assertEquals(14, p.nextToCommit(), "everything taken is answered");
    }

    @Test
    void exactlyOnceSkipsWhatTheLastOwnerAnsweredAndCommitsWhatIsAnsweredAboveTheOffset() {
        PartitionOffsets p = new PartitionOffsets(false);
        // the last owner committed 5, and answered 6 and 8 above it (5 and 7 not)
        p.loadCommitted(new OffsetAndMetadata(5, PartitionProgress.of(8, Set.of(5L, 7L), -1).metadata()));
        p.ready = true;
        assertEquals(8, p.answeredUpTo);
        assertEquals(Set.of(5L, 7L), p.redo);
        assertTrue(p.isNew(5));
        p.take(5);
        assertFalse(p.isNew(6), "answered by the last owner: not answered again");
        assertTrue(p.isNew(7));
        p.take(7);
        assertFalse(p.isNew(8));
        PartitionTransactions.Offsets offsets = p.transactionOffsets();
        assertNull(offsets.next(Set.of()), "nothing answered: the committed offset and metadata stand");
        assertTrue(p.isNew(9));
        p.take(9);

        OffsetAndMetadata with7 = offsets.next(Set.of(7L));
        assertEquals(5, with7.offset(), "5 is still open");
        PartitionProgress progress = PartitionProgress.parse(with7.offset(), with7.metadata());
        assertEquals(Set.of(5L, 9L), progress.unanswered(), "7 goes in this transaction; 5 and 9 are open");
        offsets.committed(with7, Set.of(7L));
        assertEquals(Set.of(5L, 9L), p.pending);
        OffsetAndMetadata all = offsets.next(Set.of(5L, 9L));
        assertEquals(10, all.offset());
        assertEquals("", all.metadata(), "nothing answered above the offset");
    }

    @Test
    void exactlyOnceCommitsNothingBeforeTheCommittedOffsetIsRead() {
        PartitionOffsets p = new PartitionOffsets(false);
        p.take(3);
        assertNull(p.transactionOffsets().next(Set.of(3L)), "not ready: the last owner's progress is not known yet");
    }
}
