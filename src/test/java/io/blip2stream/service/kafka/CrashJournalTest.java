package io.blip2stream.service.kafka;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Issue 19, item 2, a node alone: what its journal makes of its own deaths. A death blames every record in hand, or
 * the one running alone; answered records and a graceful stop blame nothing; a node's journal is its own.
 */
class CrashJournalTest {
    @TempDir
    Path dir;

    @Test
    void aDeathBlamesTheRecordsInHandOrTheOneRunningAlone() {
        CrashJournal first = CrashJournal.open(dir, "g-node-5701");
        first.taken("t/0/1");
        first.taken("t/0/2");
        first.taken("t/0/3");
        first.done("t/0/3");
        // the process dies here: no close
        assertThrows(IllegalStateException.class, () -> CrashJournal.open(dir, "g-node-5701"), "a journal in use is refused");
        first.dieForTest().run(); // what the death of the process does to its lock

        CrashJournal second = CrashJournal.open(dir, "g-node-5701");
        assertEquals(1, second.crashes("t/0/1"));
        assertEquals(1, second.crashes("t/0/2"));
        assertEquals(0, second.crashes("t/0/3"), "answered before the death");
        second.taken("t/0/1");
        second.alone("t/0/1");
        second.taken("t/0/2");
        second.dieForTest().run(); // dies while t/0/1 runs alone (t/0/2 taken but waiting)

        CrashJournal third = CrashJournal.open(dir, "g-node-5701");
        assertEquals(2, third.crashes("t/0/1"), "the record running alone is blamed");
        assertEquals(1, third.crashes("t/0/2"), "the one waiting is not");
        third.taken("t/0/2");
        third.done("t/0/2");
        assertEquals(0, third.crashes("t/0/2"), "answered: its count is forgotten");
        third.taken("t/0/9");
        third.close(); // a graceful stop: what is in hand is handed back, not a crash

        CrashJournal fourth = CrashJournal.open(dir, "g-node-5701");
        assertEquals(0, fourth.crashes("t/0/9"));
        assertEquals(2, fourth.crashes("t/0/1"), "counts outlive restarts until the record is answered");
        assertEquals(0, CrashJournal.open(dir, "g-node-5702").crashes("t/0/1"), "another node's journal is its own");
    }

    /**
     * Records waiting behind suspects (not yet started) are not blamed for a death between two suspects: before,
     * every queued suspect got its second death at once and went to the DLT unrun (ExactlyOnceIT, 23 of 500).
     */
    @Test
    void recordsWaitingToStartAreNotBlamed() {
        CrashJournal first = CrashJournal.open(dir, "g-node-5801");
        for (String s : new String[] {"t/1/1", "t/1/2", "t/1/3", "t/1/4"}) {
            first.taken(s);
        }
        first.waiting("t/1/1"); // suspects queued to run alone
        first.waiting("t/1/2");
        first.waiting("t/1/3"); // held behind them, then started
        first.started("t/1/3");
        first.dieForTest().run(); // between two suspects: none runs alone

        CrashJournal second = CrashJournal.open(dir, "g-node-5801");
        assertEquals(0, second.crashes("t/1/1"), "waiting: not blamed");
        assertEquals(0, second.crashes("t/1/2"), "waiting: not blamed");
        assertEquals(1, second.crashes("t/1/3"), "started: blamed");
        assertEquals(1, second.crashes("t/1/4"), "running: blamed");
        // the states survive the journal's compaction
        for (int i = 0; i < 20_000; i++) {
            second.taken("t/2/" + i);
            second.done("t/2/" + i);
        }
        second.taken("t/1/1");
        second.waiting("t/1/1");
        second.taken("t/1/5");
        second.alone("t/1/5");
        for (int i = 0; i < 60_000; i++) { // more than a journal's worth (1 MB): compacted at least once
            second.taken("t/3/" + i);
            second.done("t/3/" + i);
        }
        second.dieForTest().run();
        CrashJournal third = CrashJournal.open(dir, "g-node-5801");
        assertEquals(1, third.crashes("t/1/5"), "the one running alone, after compaction");
        assertEquals(0, third.crashes("t/1/1"), "still waiting, after compaction");
    }
}
