package io.blip2stream.model.llm;

import io.blip2stream.model.config.TextConfig;
import io.blip2stream.model.generation.DecoderSession;

/**
 * BLIP-2's frozen language model, whatever its family: it embeds tokens (the soft visual prompt is placed
 * among them by the caller) and decodes after a prompt.
 *
 * <p>Decoder-only models (OPT) read the prompt and continue it; encoder-decoder models (T5) encode the prompt
 * and decode from their decoder start token.
 */
public interface LanguageModel {

    TextConfig config();

    /** W: the width of the input embeddings, and of each soft-prompt vector. */
    int inputWidth();

    /** L: the hidden size, the width of the language projection's output. */
    int hiddenSize();

    /** Copies the input embedding of token {@code id} into {@code dst} at {@code offset} (W floats). */
    void embedToken(int id, float[] dst, int offset);

    /** The most positions a prompt plus its new tokens may take (OPT: its position table; T5: no limit). */
    int maxPositions();

    /**
     * The ids the logits processors see as the prompt of the generated sequence: for an encoder-decoder, its
     * decoder start token; null for a decoder-only model (the caller's prompt ids).
     */
    int[] decoderPrompt();

    /**
     * How a decode step runs: "eager" (an engine call per op), "tensorflow-function" (each layer one call of a
     * TensorFlow function), or "tensorflow-function-packed" (the same, its projections keeping their weights in
     * oneDNN's packed layout).
     */
    default String decodePath() {
        return "eager";
    }

    /**
     * Runs the prompt and returns the session that decodes after it.
     *
     * @param inputsEmbeds  [B, T, W] flattened
     * @param attentionMask [B][T], 1 for real tokens, 0 for padding
     */
    DecoderSession start(float[] inputsEmbeds, int[][] attentionMask);

    /**
     * Logits at every generated position computed in one pass, without a cache (for parity checks), one row.
     * Decoder-only: every position of the prompt (which holds any continuation); encoder-decoder: every decoder
     * position of {@code [decoder_start] + decoderIds}.
     */
    float[][] fullLogits(float[] inputsEmbeds, int[] attentionMask, int[] decoderIds);
}
