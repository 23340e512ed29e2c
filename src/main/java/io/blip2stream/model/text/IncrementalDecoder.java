package io.blip2stream.model.text;

import java.util.Arrays;

/**
 * Turns tokens into text as they come. A byte-level token can hold part of a UTF-8 character: the text is held
 * back while it ends in U+FFFD and emitted once, whole, when the character completes. Each piece is decoded
 * with a few tokens of left context so that tokenizers which treat a leading word boundary specially (Metaspace)
 * give the same text as decoding everything at once.
 */
public final class IncrementalDecoder {
    private final TextTokenizer tokenizer;
    private int[] ids = new int[16];
    private int size;
    private int prefixOffset;
    private int readOffset;
    private final StringBuilder emitted = new StringBuilder();

    public IncrementalDecoder(TextTokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** Adds a token; returns the new piece of text, or "" while a character is incomplete. */
    public String add(int tokenId) {
        if (size == ids.length) {
            ids = Arrays.copyOf(ids, size * 2);
        }
        ids[size++] = tokenId;
        String prefix = tokenizer.decode(ids, prefixOffset, readOffset);
        String text = tokenizer.decode(ids, prefixOffset, size);
        if (text.length() > prefix.length() && !text.endsWith("\uFFFD") && text.startsWith(prefix)) {
            String piece = text.substring(prefix.length());
            prefixOffset = readOffset;
            readOffset = size;
            emitted.append(piece);
            return piece;
        }
        return "";
    }

    /** The whole text of the tokens so far. */
    public String text() {
        return tokenizer.decode(ids, 0, size);
    }

    /** At the end: what the pieces have not said yet (an incomplete character, say). */
    public String flush() {
        String all = text();
        String done = emitted.toString();
        String rest = all.startsWith(done) ? all.substring(done.length()) : "";
        emitted.append(rest);
        prefixOffset = readOffset = size;
        return rest;
    }
}
