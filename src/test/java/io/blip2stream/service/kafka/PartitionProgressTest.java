package io.blip2stream.service.kafka;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PartitionProgressTest {

    @Test
    void inOrderNeedsNoMetadata() {
        PartitionProgress p = PartitionProgress.of(9, List.of(), -1);
        assertEquals(10, p.next());
        assertEquals("", p.metadata());
        PartitionProgress q = PartitionProgress.of(9, List.of(9L), -1);
        assertEquals(9, q.next());
        assertEquals("", q.metadata(), "nothing above the offset is answered");
    }

    @Test
    void answersAboveTheOffsetAreCommittedInItsMetadata() {
        // 5 and 7 still running, 6, 8 and 9 answered
        PartitionProgress p = PartitionProgress.of(9, List.of(5L, 7L), -1);
        assertEquals(5, p.next());
        assertEquals("eos1;9;5,7,", p.metadata());
        PartitionProgress read = PartitionProgress.parse(p.next(), p.metadata());
        for (long o = 0; o < 12; o++) {
            assertEquals(o < 5 || o == 6 || o == 8 || o == 9, read.answered(o), "offset " + o);
        }
    }

    @Test
    void foreignOrMissingMetadataMeansNothingAboveIsAnswered() {
        assertFalse(PartitionProgress.parse(5, "").answered(6));
        assertFalse(PartitionProgress.parse(5, null).answered(6));
        assertFalse(PartitionProgress.parse(5, "written by someone else").answered(6));
        assertTrue(PartitionProgress.parse(5, "").answered(4));
    }

    /**
     * Owners take records in order and answer them in random order, commit at random moments and crash at random
     * moments; the next owner reads the last commit. Across 2,000 such runs every record is answered exactly once.
     */
    @Test
    void ownersThatCrashAtRandomAnswerEveryRecordExactlyOnce() {
        Random random = new Random(7);
        for (int run = 0; run < 2000; run++) {
            int records = 40;
            int[] answers = new int[records];
            long committedNext = 0;
            String committedMetadata = "";
            int owners = 0;
            while (true) {
                owners++;
                PartitionProgress last = PartitionProgress.parse(committedNext, committedMetadata);
                long highest = committedNext - 1;
                TreeSet<Long> pending = new TreeSet<>();
                Set<Long> answeredNow = new TreeSet<>(); // answered by this owner, not yet committed
                boolean crashed = false;
                long offset = committedNext;
                while (!crashed) {
                    int action = random.nextInt(10);
                    if (action < 4 && offset < records) { // take the next record, unless the last owner answered it
                        if (!last.answered(offset)) {
                            pending.add(offset);
                        }
                        highest = offset++;
                    } else if (action < 7 && !pending.isEmpty()) { // answer one at random (not committed yet)
                        List<Long> l = new ArrayList<>(pending);
                        Collections.shuffle(l, random);
                        pending.remove(l.get(0));
                        answeredNow.add(l.get(0));
                    } else if (action < 9) { // a transaction: the answers and the offset
                        TreeSet<Long> open = new TreeSet<>(pending);
                        open.addAll(last.unanswered().tailSet(highest + 1));
                        PartitionProgress p = PartitionProgress.of(highest, open, last.answeredUpTo());
                        for (long a : answeredNow) {
                            answers[(int) a]++;
                        }
                        answeredNow.clear();
                        committedNext = p.next();
                        committedMetadata = p.metadata();
                        if (offset >= records && pending.isEmpty()) {
                            break;
                        }
                    } else {
                        crashed = true; // what is not committed is lost
                    }
                }
                if (!crashed) {
                    break;
                }
                assertTrue(owners < 10_000, "progress");
            }
            for (int i = 0; i < records; i++) {
                assertEquals(1, answers[i], "run " + run + ": record " + i + " answered once");
            }
        }
    }
}
