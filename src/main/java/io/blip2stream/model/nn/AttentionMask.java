package io.blip2stream.model.nn;

/**
 * Attention masks as attention adds them to its scores: 0 where a key is seen, {@link #MASKED} where it is not. The
 * one place that turns a tokenizer's 1/0 {@code attention_mask} into that form, for the Q-Former, OPT, T5 and training.
 *
 * <p>Dimensions: B batch, L mask length, P visible prefix, T new positions, S keys (past + T).
 */
public final class AttentionMask {
    /**
     * What a masked key adds to its score: float32's lowest, as transformers' {@code torch.finfo(dtype).min}, so a
     * masked key's weight is exactly 0 after softmax.
     */
    public static final float MASKED = -Float.MAX_VALUE;

    private AttentionMask() {}

    /**
     * Key padding: {@code mask} [B][L] of 1 (a token) and 0 (padding) to [B, P + L] flat, each row's first
     * {@code prefix} keys always seen (the Q-Former's queries before its text).
     */
    public static float[] padding(int[][] mask, int prefix) {
        int b = mask.length;
        int l = b == 0 ? 0 : mask[0].length;
        int n = prefix + l;
        float[] out = new float[b * n];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < l; j++) {
                out[i * n + prefix + j] = mask[i][j] == 1 ? 0f : MASKED;
            }
        }
        return out;
    }

    /**
     * Causal with key padding: [B, 1, T, S] flat for T new positions after {@code past} cached ones, where a
     * position sees the keys up to itself that {@code mask} [B][S] marks 1.
     */
    public static float[] causal(int[][] mask, int past, int t) {
        int b = mask.length;
        int s = past + t;
        float[] out = new float[b * t * s];
        for (int i = 0; i < b; i++) {
            for (int q = 0; q < t; q++) {
                int base = (i * t + q) * s;
                for (int k = 0; k < s; k++) {
                    boolean visible = k <= past + q && mask[i][k] == 1;
                    out[base + k] = visible ? 0f : MASKED;
                }
            }
        }
        return out;
    }
}
