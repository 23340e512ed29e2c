package io.blip2stream.engine;

import org.junit.jupiter.api.Test;

import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** How long waiting requests are held for company: scaled to the measured admission cost, within the bounds. */
class AdmissionPolicyTest {
    static long ms(long ms) {
        return TimeUnit.MILLISECONDS.toNanos(ms);
    }

    @Test
    void aSlowModelsRequestsWaitLongerForCompanyUpToTheBound() {
        AdmissionPolicy p = new AdmissionPolicy(10, 200);
        p.admitted(8, ms(8 * 300)); // 300 ms a request, as the bench's small model on 2 cores
        assertEquals(ms(300), p.rowCostNanos());
        assertEquals(ms(75), p.idleGapNanos(), "a quarter of a request's cost");
        assertEquals(ms(200), p.joinWaitNanos(), "the cost, capped at max_join_wait_ms");
        assertEquals(ms(200), p.idleCapNanos());
        assertFalse(p.joinNow(3, 6, ms(150)), "3 waiting for 6 free rows, 150 ms: hold them");
        assertTrue(p.joinNow(3, 6, ms(200)), "the oldest waited the bound: go");
        assertTrue(p.joinNow(6, 6, 0), "they fill the free rows: go at once");
        assertFalse(p.joinNow(2, 0, ms(1000)), "no free row");
        assertFalse(p.joinNow(0, 4, ms(1000)), "nobody waiting");
    }

    @Test
    void aFastModelsRequestsBarelyWait() {
        AdmissionPolicy p = new AdmissionPolicy(10, 200);
        p.admitted(2, ms(8)); // 4 ms a request
        assertEquals(ms(10), p.idleGapNanos(), "max_batch_wait_ms at least");
        assertEquals(ms(4), p.joinWaitNanos(), "no longer than admitting costs");
        assertTrue(p.joinNow(1, 7, ms(4)));
        assertFalse(p.joinNow(1, 7, ms(3)));
    }

    @Test
    void theCostIsAMovingAverageOfAdmissionsPerRequest() {
        AdmissionPolicy p = new AdmissionPolicy(10, 1000);
        assertEquals(-1, p.rowCostNanos(), "nothing measured");
        assertEquals(ms(1000), p.joinWaitNanos(), "before any measure: the bound (the first admissions are the slowest)");
        assertEquals(ms(10), p.idleGapNanos());
        p.admitted(1, ms(100));
        p.admitted(4, ms(1600)); // 400 a request
        assertEquals(ms(190), p.rowCostNanos(), 1000, "0.3 x 400 + 0.7 x 100");
        p.admitted(0, ms(5000)); // nothing admitted: no measure
        assertEquals(ms(190), p.rowCostNanos(), 1000);
    }

    @Test
    void zeroJoinWaitKeepsTheOldBehaviour() {
        AdmissionPolicy p = new AdmissionPolicy(5, 0);
        p.admitted(1, ms(500));
        assertEquals(ms(5), p.idleGapNanos());
        assertEquals(ms(5), p.idleCapNanos());
        assertEquals(0, p.joinWaitNanos());
        assertTrue(p.joinNow(1, 7, 0), "join at the next step");
    }
}
