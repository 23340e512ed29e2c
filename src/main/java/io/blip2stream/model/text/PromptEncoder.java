package io.blip2stream.model.text;

import io.blip2stream.model.config.TextConfig;

/**
 * The text a generation checkpoint's language model reads after the visual prompt, as ids: the caption prompt, or
 * the question in the model family's VQA template. One place for the rules, for the service (which tokenizes on
 * its worker threads, before a request reaches the model) and for the command line.
 */
public final class PromptEncoder {
    private final TextTokenizer tokenizer;
    private final boolean encoderDecoder;
    private final int bosTokenId;

    public PromptEncoder(TextTokenizer tokenizer, TextConfig languageModel) {
        this.tokenizer = tokenizer;
        this.encoderDecoder = languageModel.isEncoderDecoder();
        this.bosTokenId = languageModel.bosTokenId();
    }

    public TextTokenizer tokenizer() {
        return tokenizer;
    }

    /** The VQA prompt of the model family: "Question: {q} Answer:" for OPT, "Question: {q} Short answer:" for T5. */
    public String vqaPrompt(String question) {
        String q = question.strip();
        return encoderDecoder ? "Question: " + q + " Short answer:" : "Question: " + q + " Answer:";
    }

    /**
     * The text ids of a prompt: the tokenizer's ids with its special tokens. No prompt: OPT starts from BOS
     * alone; T5 (which has no BOS) encodes the empty text, as BLIP-2's processor does.
     */
    public int[] promptIds(String prompt) {
        if (prompt == null || prompt.isEmpty()) {
            return bosTokenId >= 0 ? new int[] {bosTokenId} : tokenizer.encode("");
        }
        return tokenizer.encode(prompt);
    }
}
