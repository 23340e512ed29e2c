package io.blip2stream.service.protocol;

/**
 * Text a client sent (an id, a key, a field's value, a message that quotes one), made safe to put into an error
 * message or a log line: control characters, line and paragraph separators and lone surrogates escaped (a newline
 * in a Kafka key cannot forge a log line), and long values cut, saying how long they were.
 */
public final class ClientText {
    private ClientText() {}

    /** For an error message: at most 64 characters of the value. */
    public static String quote(Object value) {
        return escape(value, 64);
    }

    /** For a parser's message, which may quote the input: at most 200 characters. */
    public static String detail(Object value) {
        return escape(value, 200);
    }

    /** For a log line: at most 256 characters of the value. */
    public static String log(Object value) {
        return escape(value, 256);
    }

    /** Bytes as text for a log line (a Kafka key): UTF-8 where they are, escaped where not. */
    public static String log(byte[] value) {
        return value == null ? "null" : escape(new String(value, java.nio.charset.StandardCharsets.UTF_8), 256);
    }

    static String escape(Object value, int max) {
        if (value == null) {
            return "null";
        }
        String s = value.toString();
        StringBuilder b = new StringBuilder(Math.min(s.length(), max) + 16);
        int n = Math.min(s.length(), max);
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            boolean lone = Character.isHighSurrogate(c) ? i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))
                    : Character.isLowSurrogate(c) && (i == 0 || !Character.isHighSurrogate(s.charAt(i - 1)));
            if (c == '\n') {
                b.append("\\n");
            } else if (c == '\r') {
                b.append("\\r");
            } else if (c == '\t') {
                b.append("\\t");
            } else if (c == '\\') {
                b.append("\\\\");
            } else if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029' || c == '\u0085' || lone) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        if (s.length() > max) {
            b.append("...(").append(s.length()).append(" characters)");
        }
        return b.toString();
    }
}
