package io.blip2stream.model.qformer;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.config.QFormerConfig;
import io.blip2stream.model.nn.EmbeddingTable;
import io.blip2stream.model.weights.Weights;

/**
 * The Q-Former's text embeddings (transformers' {@code Blip2TextEmbeddings}): word plus absolute position
 * embeddings, looked up in Java. The LayerNorm that follows is the Q-Former's {@code layernorm}, applied to
 * queries and text together.
 */
public final class Blip2TextEmbeddings {
    private final EmbeddingTable words;     // (V, D)
    private final EmbeddingTable positions; // (max_position_embeddings, D)

    private Blip2TextEmbeddings(EmbeddingTable words, EmbeddingTable positions) {
        this.words = words;
        this.positions = positions;
    }

    public static Blip2TextEmbeddings load(Weights w, QFormerConfig c, String prefix) {
        return new Blip2TextEmbeddings(
                EmbeddingTable.load(w, prefix + ".word_embeddings.weight", c.vocabSize(), c.hiddenSize()),
                EmbeddingTable.load(w, prefix + ".position_embeddings.weight", c.maxPositionEmbeddings(), c.hiddenSize()));
    }

    /** Like {@link #load}; the tables are arrays in {@code m} when {@code w} is recording (training). */
    public static Blip2TextEmbeddings load(Weights w, NDManager m, QFormerConfig c, String prefix) {
        return new Blip2TextEmbeddings(
                EmbeddingTable.load(w, m, prefix + ".word_embeddings.weight", c.vocabSize(), c.hiddenSize()),
                EmbeddingTable.load(w, m, prefix + ".position_embeddings.weight", c.maxPositionEmbeddings(), c.hiddenSize()));
    }

    /** The word table (an array when training, for a tied LM head), else null. */
    public EmbeddingTable words() {
        return words;
    }

    /**
     * Word plus position embeddings of equal-length rows, positions from 0: [B, T, D] in {@code scope}
     * (differentiable when the tables are arrays).
     */
    public NDArray embed(NDManager scope, int[][] ids) {
        int b = ids.length;
        int t = ids[0].length;
        int[] flat = new int[b * t];
        int[] pos = new int[b * t];
        for (int i = 0; i < b; i++) {
            System.arraycopy(ids[i], 0, flat, i * t, t);
            for (int j = 0; j < t; j++) {
                pos[i * t + j] = j;
            }
        }
        long d = words.dim();
        return words.lookup(scope, flat).add(positions.lookup(scope, pos)).reshape(b, t, d); // (B, T, D)
    }

    public int maxPositions() {
        return positions.rows();
    }

    /** Writes the embedding of token {@code id} at position {@code position} into {@code dst} at {@code offset}. */
    public void embed(int id, int position, float[] dst, int offset) {
        words.copyRow(id, dst, offset);
        positions.addRow(position, dst, offset);
    }
}
