package io.blip2stream.model.llm.t5;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** T5Attention._relative_position_bucket with T5's defaults (32 buckets, max distance 128), worked by hand. */
class RelativePositionBucketTest {
    static int bi(int rp) {
        return T5ForConditionalGeneration.relativePositionBucket(rp, true, 32, 128);
    }

    static int causal(int rp) {
        return T5ForConditionalGeneration.relativePositionBucket(rp, false, 32, 128);
    }

    @Test
    void bidirectionalBucketsSplitBySign() {
        assertEquals(0, bi(0));
        assertEquals(1, bi(-1));
        assertEquals(17, bi(1));     // keys after the query use the upper half
        assertEquals(7, bi(-7));     // exact up to max_exact = 8
        assertEquals(8, bi(-8));     // log(1) = 0
        assertEquals(10, bi(-16));   // 8 + log(2)/log(16)*8 = 8 + 2, exactly, in float32
        assertEquals(12, bi(-32));   // 8 + log(4)/log(16)*8 = 8 + 4
        assertEquals(15, bi(-127));
        assertEquals(15, bi(-1000)); // clipped to the last bucket
        assertEquals(31, bi(1000));
    }

    @Test
    void causalBucketsOnlyLookBack() {
        assertEquals(0, causal(0));
        assertEquals(0, causal(5));  // the future maps to bucket 0 (and is masked anyway)
        assertEquals(15, causal(-15));
        assertEquals(16, causal(-16));
        assertEquals(17, causal(-20)); // 16 + trunc(log(1.25)/log(8)*16 = 1.72)
        assertEquals(31, causal(-500));
    }
}
