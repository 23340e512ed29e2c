package io.blip2stream.model.generation;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The processors against hand-computed transformers results. */
class LogitsProcessorTest {
    static final float NEG_INF = Float.NEGATIVE_INFINITY;

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeScoresOnce() {
        float[] s = {2f, -1f, 0.5f, 3f};
        GenerationParams p = GenerationParams.builder().repetitionPenalty(2).build();
        LogitsProcessor.process(s, new int[] {0, 1, 1, 0}, 4, 0, p, -1);
        assertArrayEquals(new float[] {1f, -2f, 0.5f, 3f}, s);
    }

    @Test
    void minNewTokensForbidsEos() {
        float[] s = {0f, 5f, 1f};
        GenerationParams p = GenerationParams.builder().minNewTokens(2).build();
        LogitsProcessor.process(s, new int[0], 0, 1, p, 1);
        assertEquals(NEG_INF, s[1]);
        float[] t = {0f, 5f, 1f};
        LogitsProcessor.process(t, new int[0], 0, 2, p, 1);
        assertEquals(5f, t[1]);
    }

    @Test
    void topKKeepsTiesAtTheKthValue() {
        float[] s = {1f, 3f, 2f, 2f, 0f};
        LogitsProcessor.warp(s, GenerationParams.builder().doSample(true).topK(2).build());
        assertArrayEquals(new float[] {NEG_INF, 3f, 2f, 2f, NEG_INF}, s);
    }

    @Test
    void topPKeepsTheSmallestSetReachingP() {
        // probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps the first two (cumulative 0.2 of the tail <= 0.3)
        float[] s = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)};
        LogitsProcessor.warp(s, GenerationParams.builder().doSample(true).topK(0).topP(0.7).build());
        assertTrue(s[0] > NEG_INF && s[1] > NEG_INF);
        assertEquals(NEG_INF, s[2]);
        assertEquals(NEG_INF, s[3]);
    }

    @Test
    void temperatureDivides() {
        float[] s = {2f, -4f};
        LogitsProcessor.warp(s, GenerationParams.builder().doSample(true).temperature(2).topK(0).build());
        assertArrayEquals(new float[] {1f, -2f}, s);
    }

    @Test
    void beamTopKOrdersByValueThenIndex() {
        assertArrayEquals(new int[] {3, 1, 2}, BeamSearch.topK(new float[] {0f, 5f, 5f, 7f, -1f}, 3));
    }

    @Test
    void invalidParametersAreRefusedWithTheirName() {
        var e = assertThrows(IllegalArgumentException.class, () -> GenerationParams.builder().topP(1.5).build());
        assertTrue(e.getMessage().contains("top_p"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GenerationParams.builder().maxNewTokens(0).build());
        assertTrue(e.getMessage().contains("max_new_tokens"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GenerationParams.builder().doSample(true).numBeams(2).build());
        assertTrue(e.getMessage().contains("num_beams"), e.getMessage());
    }
}
