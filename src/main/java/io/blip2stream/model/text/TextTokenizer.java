package io.blip2stream.model.text;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A checkpoint's {@code tokenizer.json} through DJL's binding of Hugging Face tokenizers (byte-level BPE for OPT,
 * Unigram for T5, WordPiece for the Q-Former). Encoding adds the special tokens of the tokenizer's template, as
 * transformers does by default.
 */
public final class TextTokenizer implements AutoCloseable {
    private final HuggingFaceTokenizer tokenizer;
    private final int maxTokenBytes;

    private TextTokenizer(HuggingFaceTokenizer tokenizer, int maxTokenBytes) {
        this.tokenizer = tokenizer;
        this.maxTokenBytes = maxTokenBytes;
    }

    public static TextTokenizer load(Path modelDir) {
        Path file = modelDir.resolve("tokenizer.json");
        if (!Files.exists(file)) {
            throw new IllegalArgumentException("missing file " + file);
        }
        int longest = longestToken(file);
        try {
            return new TextTokenizer(HuggingFaceTokenizer.newInstance(file,
                    Map.of("addSpecialTokens", "true", "truncation", "false", "padding", "false",
                            "modelMaxLength", String.valueOf(Integer.MAX_VALUE))), longest);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * The longest token of the vocabulary (added tokens included), in UTF-8 bytes. No token covers more bytes of
     * input than that (a byte-level BPE token's characters each stand for one byte; a Unigram piece's "▁" for one
     * space), so a text of more than {@code n * maxTokenBytes()} bytes needs more than {@code n} tokens, or falls
     * back to unknown tokens (word-level vocabularies): either way it can be refused without tokenizing it.
     */
    public int maxTokenBytes() {
        return maxTokenBytes;
    }

    /** The longest entry of {@code model.vocab} and {@code added_tokens} in a tokenizer.json, in UTF-8 bytes. */
    static int longestToken(Path file) {
        com.fasterxml.jackson.databind.JsonNode root;
        try {
            root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        int longest = 1;
        com.fasterxml.jackson.databind.JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) {           // BPE, WordPiece, WordLevel: {"token": id}
            for (var it = vocab.fieldNames(); it.hasNext(); ) {
                longest = Math.max(longest, utf8Length(it.next()));
            }
        } else if (vocab.isArray()) {     // Unigram: [["piece", score]]
            for (com.fasterxml.jackson.databind.JsonNode e : vocab) {
                longest = Math.max(longest, utf8Length(e.path(0).asText("")));
            }
        }
        for (com.fasterxml.jackson.databind.JsonNode t : root.path("added_tokens")) {
            longest = Math.max(longest, utf8Length(t.path("content").asText("")));
        }
        return longest;
    }

    private static int utf8Length(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
    }

    /** The ids of {@code text} with the template's special tokens. */
    public int[] encode(String text) {
        Encoding e = tokenizer.encode(text);
        long[] ids = e.getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    /** Text of {@code ids}, special tokens left out. */
    public String decode(int[] ids, int from, int to) {
        long[] l = new long[to - from];
        for (int i = from; i < to; i++) {
            l[i - from] = ids[i];
        }
        return tokenizer.decode(l, true);
    }

    public String decode(int[] ids) {
        return decode(ids, 0, ids.length);
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
