package io.blip2stream.train;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.nn.AttentionMask;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The paper's masks, as the Q-Former's additive self-attention masks. */
class QFormerMasksTest {

    @Test
    void imageGroundedGenerationLetsQueriesSeeOnlyQueriesAndTextSeeQueriesAndEarlierText() {
        try (NDManager m = Engines.newManager(Engines.Kind.PYTORCH)) {
            int[][] text = {{1, 1, 1}, {1, 1, 0}}; // the second row's last token is padding
            float[] mask = QFormerMasks.multimodalCausalMask(m, text, 2).toFloatArray(); // (2, 1, 5, 5)
            int n = 5;
            float x = AttentionMask.MASKED;
            float[] row0 = {
                0, 0, x, x, x,   // query 0: queries only
                0, 0, x, x, x,   // query 1
                0, 0, 0, x, x,   // text 0: queries and itself
                0, 0, 0, 0, x,   // text 1
                0, 0, 0, 0, 0};  // text 2
            float[] first = java.util.Arrays.copyOfRange(mask, 0, n * n);
            assertArrayEquals(row0, first);
            float[] second = java.util.Arrays.copyOfRange(mask, n * n, 2 * n * n);
            assertEquals(x, second[4 * n + 4], "padding is never seen");
            assertEquals(x, second[3 * n + 4]);
            assertEquals(0f, second[4 * n + 3], "a padded position still sees the text before it (no empty rows)");
        }
    }

    @Test
    void matchingAndContrastivePassesMaskOnlyTextPadding() {
        try (NDManager m = Engines.newManager(Engines.Kind.PYTORCH)) {
            float[] mask = QFormerMasks.keyPaddingMask(m, new int[][] {{1, 0}}, 3).toFloatArray(); // (1, 1, 1, 5)
            assertArrayEquals(new float[] {0, 0, 0, 0, AttentionMask.MASKED}, mask);
        }
    }
}
