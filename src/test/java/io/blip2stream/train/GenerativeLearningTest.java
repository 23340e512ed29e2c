package io.blip2stream.train;

import io.blip2stream.train.scenes.SceneTokenizer;
import org.junit.jupiter.api.Test;


import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GenerativeLearningTest {

    @Test
    void accuracyIsReportedPerKindOfTargetWord() {
        int vocab = SceneTokenizer.vocabSize();
        // targets: "two" (count), "red" (colour), "circles" (shape), "left" (place), "yes" (yes/no), "the" (none), ignored
        int[] labels = {SceneTokenizer.word("two"), SceneTokenizer.word("red"), SceneTokenizer.word("circles"), SceneTokenizer.word("left"), SceneTokenizer.word("yes"), SceneTokenizer.word("the"), -1};
        int[] predicted = {SceneTokenizer.word("two"), SceneTokenizer.word("blue"), SceneTokenizer.word("circles"), SceneTokenizer.word("right"), SceneTokenizer.word("yes"), SceneTokenizer.word("a"), 0};
        float[] logits = new float[labels.length * vocab];
        for (int i = 0; i < labels.length; i++) {
            logits[i * vocab + predicted[i]] = 1f;
        }
        double[] acc = GenerativeLearning.accuracyByKind(logits, labels, vocab);
        assertEquals(GenerativeLearning.KINDS.length, acc.length);
        assertEquals(1.0, acc[0], "count");
        assertEquals(0.0, acc[1], "colour");
        assertEquals(1.0, acc[2], "shape");
        assertEquals(0.0, acc[3], "place");
        assertEquals(1.0, acc[4], "yes/no");
        double[] none = GenerativeLearning.accuracyByKind(new float[vocab], new int[] {SceneTokenizer.word("the")}, vocab);
        for (double a : none) {
            assertTrue(Double.isNaN(a), "a batch without the kind reports none");
        }
    }
}
