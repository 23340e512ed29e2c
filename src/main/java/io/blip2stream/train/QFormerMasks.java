package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.nn.AttentionMask;

/** The Q-Former's self-attention masks for training, additive, from Java. */
final class QFormerMasks {
    private QFormerMasks() {}

    /** [B, 1, 1, P + T]: {@code prefix} positions (queries) always visible, text padding masked. */
    static NDArray keyPaddingMask(NDManager scope, int[][] textMask, int prefix) {
        int b = textMask.length;
        int t = textMask[0].length;
        return scope.create(AttentionMask.padding(textMask, prefix), new Shape(b, 1, 1, prefix + t));
    }

    /**
     * [B, 1, Q + T, Q + T], the multimodal causal mask of ITG: a query sees every query and no text; a text token
     * sees every query and the real text tokens up to itself.
     */
    static NDArray multimodalCausalMask(NDManager scope, int[][] textMask, int q) {
        int b = textMask.length;
        int t = textMask[0].length;
        int n = q + t;
        float[] m = new float[b * n * n];
        for (int i = 0; i < b; i++) {
            for (int row = 0; row < n; row++) {
                for (int col = 0; col < n; col++) {
                    boolean visible;
                    if (col < q) {
                        visible = true;
                    } else if (row < q) {
                        visible = false;
                    } else {
                        visible = col <= row && textMask[i][col - q] == 1;
                    }
                    m[(i * n + row) * n + col] = visible ? 0f : AttentionMask.MASKED;
                }
            }
        }
        return scope.create(m, new Shape(b, 1, n, n));
    }
}
