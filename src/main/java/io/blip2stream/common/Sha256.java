package io.blip2stream.common;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * SHA-256, the one hash of the service: of bytes, of a text's UTF-8, and of a sequence of fields, each prefixed by
 * its length so that no two sequences share a digest ("ab", "c" against "a", "bc"; a null field against an empty one).
 */
public final class Sha256 {
    private Sha256() {}

    /** The digest of {@code bytes}, 32 bytes. */
    public static byte[] of(byte[] bytes) {
        return digest().digest(bytes);
    }

    /** The digest of {@code bytes} as 64 lower-case hex digits. */
    public static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(of(bytes));
    }

    /** The first {@code bytes} bytes of the digest of {@code text}'s UTF-8, as hex: a short, stable name for it. */
    public static String prefix(String text, int bytes) {
        return prefix(text.getBytes(StandardCharsets.UTF_8), bytes);
    }

    /** The first {@code bytes} bytes of the digest of {@code value}, as hex. */
    public static String prefix(byte[] value, int bytes) {
        return HexFormat.of().formatHex(of(value), 0, bytes);
    }

    /** The digest of {@code fields} as hex, each field's UTF-8 prefixed by its length (-1 for null). */
    public static String ofFields(String... fields) {
        MessageDigest d = digest();
        for (String s : fields) {
            byte[] b = s == null ? null : s.getBytes(StandardCharsets.UTF_8);
            d.update(ByteBuffer.allocate(8).putLong(b == null ? -1 : b.length).array());
            if (b != null) {
                d.update(b);
            }
        }
        return HexFormat.of().formatHex(d.digest());
    }

    private static MessageDigest digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
    }
}
