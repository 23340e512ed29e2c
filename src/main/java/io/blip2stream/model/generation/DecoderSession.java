package io.blip2stream.model.generation;

/**
 * A language model in the middle of decoding a batch of rows: what the generation strategies (greedy, beam,
 * sampling) drive, whatever the model family. Implementations own their KV cache.
 */
public interface DecoderSession extends AutoCloseable {

    /** The number of rows decoded together. */
    int rows();

    /** The vocabulary size of the logits. */
    int vocabSize();

    /** Next-token logits per row after the prompt, [rows][V]. */
    float[][] promptLogits();

    /** Appends one token per row and returns the next-token logits, [rows][V]. */
    float[][] step(int[] tokens);

    /**
     * Keeps the rows named, in that order (new row i is old row {@code rows[i]}): beam search, and rows leaving a
     * batch. At least one row stays.
     */
    void reorder(int[] rows);

    /**
     * Appends the rows of {@code other}, a session of the same model whose prompt has been run, after these
     * (continuous batching); {@code other} is closed. Histories of different lengths are left-padded and masked,
     * so that every row goes on as it would alone.
     */
    void merge(DecoderSession other);

    @Override
    void close();
}
