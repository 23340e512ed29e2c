package io.blip2stream.cluster;

import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import io.blip2stream.common.Sha256;

import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What the service stores in Hazelcast, sealed under the cluster's key: Hazelcast's open-source edition lets any
 * process that reaches a member's port join or read the cluster, so the data protects itself. Every value is
 * encrypted and authenticated with AES-256-GCM (the JDK's own), bound to its map and entry key (a value moved to
 * another key does not open), and every content-revealing key (an image's hash) is a keyed hash instead. A value
 * that does not open (written by a foreign member, damaged, or under a key this node does not have) is absent to
 * the service, and counted ({@link #rejected}).
 *
 * <p>Keys: the first of {@code cluster.key_file}'s lines (base64 of 32 bytes) seals; every line opens, so keys can
 * rotate (add the new key first on every node, then drop the old one). A node alone with no key file uses a random
 * key of its own: its state lives and dies with it. Sealed values are {@code "s1." + base64url(fingerprint, nonce,
 * ciphertext and tag)} for text and the same bytes unencoded for binary values.
 */
public final class ClusterCipher {
    private static final String TEXT_PREFIX = "s1.";
    private static final int NONCE = 12;
    private static final int TAG_BITS = 128;
    private static final int FINGERPRINT = 4;
    private static final SecureRandom RANDOM = new SecureRandom();

    private record Key(SecretKeySpec aes, byte[] fingerprint) {}

    private final List<Key> keys;           // the first seals
    private final SecretKeySpec hashKey;    // keyed hashes of content-revealing entry keys
    private final AtomicLong rejected = new AtomicLong();
    private final String origin;

    private ClusterCipher(List<byte[]> raw, String origin) {
        if (raw.isEmpty()) {
            throw new IllegalArgumentException("no cluster key");
        }
        List<Key> k = new ArrayList<>();
        for (byte[] b : raw) {
            if (b.length != 32) {
                throw new IllegalArgumentException("a cluster key is 32 bytes (base64 of `head -c 32 /dev/urandom`), got " + b.length);
            }
            k.add(new Key(new SecretKeySpec(b, "AES"), java.util.Arrays.copyOf(Sha256.of(b), FINGERPRINT)));
        }
        this.keys = List.copyOf(k);
        this.hashKey = new SecretKeySpec(hmac(raw.get(0), "blip2-stream entry keys".getBytes(StandardCharsets.UTF_8)), "HmacSHA256");
        this.origin = origin;
    }

    /** The keys of a key file: one base64 key a line (blank lines and # comments skipped); the first seals. */
    public static ClusterCipher fromFile(Path file) {
        List<byte[]> raw = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                String l = line.strip();
                if (!l.isEmpty() && !l.startsWith("#")) {
                    raw.add(Base64.getDecoder().decode(l));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the cluster key file " + file + ": " + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the cluster key file " + file + " holds a line that is not base64", e);
        }
        if (raw.isEmpty()) {
            throw new IllegalArgumentException("the cluster key file " + file + " holds no key");
        }
        return new ClusterCipher(raw, file.toString());
    }

    /** A random key of this node's own (a node alone: nothing to share). */
    public static ClusterCipher ephemeral() {
        byte[] k = new byte[32];
        RANDOM.nextBytes(k);
        return new ClusterCipher(List.of(k), "a random key of this node's own");
    }

    /**
     * A key anyone can derive from the cluster's name ({@code cluster.insecure}): one code path, no protection. Nodes
     * of the cluster read each other's state; so can anyone else.
     */
    public static ClusterCipher insecure(String clusterName) {
        return new ClusterCipher(List.of(Sha256.of(("blip2-stream insecure cluster " + clusterName).getBytes(StandardCharsets.UTF_8))),
                "no key (cluster.insecure: anyone who reaches the cluster can read and forge its state)");
    }

    /** Keys given as base64 lines (tests). */
    public static ClusterCipher of(String... base64Keys) {
        List<byte[]> raw = new ArrayList<>();
        for (String k : base64Keys) {
            raw.add(Base64.getDecoder().decode(k));
        }
        return new ClusterCipher(raw, "given keys");
    }

    /** Where the keys came from, for the log (never the keys). */
    public String origin() {
        return origin;
    }

    /** Values that did not open since the start. */
    public long rejected() {
        return rejected.get();
    }

    /** Seals a text value of {@code map} under {@code key}. */
    public String seal(String map, String key, String value) {
        return TEXT_PREFIX + Base64.getUrlEncoder().withoutPadding().encodeToString(seal(map, key, value.getBytes(StandardCharsets.UTF_8)));
    }

    /** Opens a text value, or null when it does not open (then it is counted). */
    public String open(String map, String key, String sealed) {
        if (sealed == null) {
            return null;
        }
        if (!sealed.startsWith(TEXT_PREFIX)) {
            rejected.incrementAndGet();
            return null;
        }
        byte[] b;
        try {
            b = Base64.getUrlDecoder().decode(sealed.substring(TEXT_PREFIX.length()));
        } catch (IllegalArgumentException e) {
            rejected.incrementAndGet();
            return null;
        }
        byte[] plain = open(map, key, b);
        return plain == null ? null : new String(plain, StandardCharsets.UTF_8);
    }

    /** Seals a binary value: fingerprint, nonce, ciphertext and tag. */
    public byte[] seal(String map, String key, byte[] value) {
        Key k = keys.get(0);
        byte[] nonce = new byte[NONCE];
        RANDOM.nextBytes(nonce);
        try {
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.ENCRYPT_MODE, k.aes(), new GCMParameterSpec(TAG_BITS, nonce));
            c.updateAAD(aad(map, key));
            byte[] ct = c.doFinal(value);
            return ByteBuffer.allocate(FINGERPRINT + NONCE + ct.length).put(k.fingerprint()).put(nonce).put(ct).array();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM is not available", e);
        }
    }

    /** Opens a binary value, or null when it does not open (then it is counted). */
    public byte[] open(String map, String key, byte[] sealed) {
        if (sealed == null) {
            return null;
        }
        if (sealed.length < FINGERPRINT + NONCE + TAG_BITS / 8) {
            rejected.incrementAndGet();
            return null;
        }
        for (Key k : keys) {
            if (!MessageDigest.isEqual(k.fingerprint(), java.util.Arrays.copyOf(sealed, FINGERPRINT))) {
                continue;
            }
            try {
                Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
                c.init(Cipher.DECRYPT_MODE, k.aes(), new GCMParameterSpec(TAG_BITS, sealed, FINGERPRINT, NONCE));
                c.updateAAD(aad(map, key));
                return c.doFinal(sealed, FINGERPRINT + NONCE, sealed.length - FINGERPRINT - NONCE);
            } catch (GeneralSecurityException e) {
                break; // forged or damaged: the tag does not verify
            }
        }
        rejected.incrementAndGet();
        return null;
    }

    /** A keyed hash of an entry key that would reveal content (an image's hash): hex of HMAC-SHA256. */
    public String hashKey(String key) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(hashKey);
            return HexFormat.of().formatHex(mac.doFinal(key.getBytes(StandardCharsets.UTF_8)));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available", e);
        }
    }

    private static byte[] aad(String map, String key) {
        return (map + "\n" + key).getBytes(StandardCharsets.UTF_8);
    }


    private static byte[] hmac(byte[] key, byte[] data) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }
}
