package io.blip2stream.model.qformer;

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

    public int maxPositions() {
        return positions.rows();
    }

    /** Writes the embedding of token {@code id} at position {@code position} into {@code dst} at {@code offset}. */
    public void embed(int id, int position, float[] dst, int offset) {
        words.copyRow(id, dst, offset);
        positions.addRow(position, dst, offset);
    }
}
