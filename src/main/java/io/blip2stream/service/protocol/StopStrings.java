package io.blip2stream.service.protocol;

import java.util.List;

/**
 * Stop strings over text that comes in pieces (a token's text at a time): what may be shown now, and where the answer
 * ends. A piece is held back while the text's end could still be the start of a stop string, so a stop string split
 * over tokens is never shown; the answer ends before the first stop string found. Not thread-safe: one request's.
 */
public final class StopStrings {
    private final List<String> stops;
    private final StringBuilder text = new StringBuilder();
    private int shown;       // characters of text handed out
    private int end = -1;    // where the answer ends (a stop string starts), or -1

    public StopStrings(List<String> stops) {
        this.stops = List.copyOf(stops);
    }

    /** Adds a piece; returns the text that may be shown now (possibly empty). After a stop, nothing more. */
    public String add(String piece) {
        if (end >= 0) {
            return "";
        }
        text.append(piece); // answers are short (max_new_tokens): each piece searches the whole text
        for (String s : stops) {
            int at = text.indexOf(s);
            if (at >= 0 && (end < 0 || at < end)) {
                end = at;
            }
        }
        int safe = end >= 0 ? end : text.length() - heldBack();
        if (safe <= shown) {
            return "";
        }
        String out = text.substring(shown, safe);
        shown = safe;
        return out;
    }

    /** Whether a stop string was found: the answer ends, and its generation may stop. */
    public boolean stopped() {
        return end >= 0;
    }

    /** The text held back at the end (no stop string came after all): to show once the answer is complete. */
    public String rest() {
        int to = end >= 0 ? end : text.length();
        String out = to > shown ? text.substring(shown, to) : "";
        shown = Math.max(shown, to);
        return out;
    }

    /** The text handed out so far. */
    public String shown() {
        return text.substring(0, shown);
    }

    /** The whole answer: the text up to the first stop string. */
    public String answer() {
        return end >= 0 ? text.substring(0, end) : text.toString();
    }

    /** How many characters at the end could begin a stop string. */
    private int heldBack() {
        int held = 0;
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, text.length()); k > held; k--) {
                if (text.substring(text.length() - k).equals(s.substring(0, k))) {
                    held = k;
                    break;
                }
            }
        }
        return held;
    }
}
