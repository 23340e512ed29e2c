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

    private TextTokenizer(HuggingFaceTokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    public static TextTokenizer load(Path modelDir) {
        Path file = modelDir.resolve("tokenizer.json");
        if (!Files.exists(file)) {
            throw new IllegalArgumentException("missing file " + file);
        }
        try {
            return new TextTokenizer(HuggingFaceTokenizer.newInstance(file,
                    Map.of("addSpecialTokens", "true", "truncation", "false", "padding", "false",
                            "modelMaxLength", String.valueOf(Integer.MAX_VALUE))));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load " + file + ": " + e.getMessage(), e);
        }
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
