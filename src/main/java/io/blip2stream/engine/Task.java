package io.blip2stream.engine;

import java.util.Locale;

/** What a request asks for. */
public enum Task {
    /** a caption, optionally continuing a prompt */
    CAPTION,
    /** an answer to a question, in the model family's VQA template */
    VQA,
    /** ITM and ITC scores of texts against the image (retrieval checkpoints) */
    MATCH,
    /** retrieval embeddings of the image and/or texts */
    EMBED;

    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public boolean generates() {
        return this == CAPTION || this == VQA;
    }

    /** The task named on the wire, or null. */
    public static Task parse(String s) {
        if (s == null) {
            return null;
        }
        switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "caption":
                return CAPTION;
            case "vqa":
                return VQA;
            case "match":
                return MATCH;
            case "embed":
                return EMBED;
            default:
                return null;
        }
    }
}
