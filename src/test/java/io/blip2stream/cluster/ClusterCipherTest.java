package io.blip2stream.cluster;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, item 3: what the service stores in Hazelcast opens only under the cluster's key, only at the map and
 * entry it was written for, and not at all once a byte changes; keys rotate; content-revealing entry keys are keyed
 * hashes; every value that does not open is counted.
 */
class ClusterCipherTest {
    static final String K1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    static final String K2 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    @Test
    void aValueOpensOnlyWhereItWasWrittenUnderTheClustersKey() {
        ClusterCipher c = ClusterCipher.of(K1);
        String state = "{\"status\":\"done\",\"result\":{\"text\":\"a secret caption\"}}";
        String sealed = c.seal("blip2-requests", "r1", state);
        assertTrue(sealed.startsWith("s1."));
        assertFalse(sealed.contains("secret") || sealed.contains("done"), "no plaintext: " + sealed);
        assertNotEquals(sealed, c.seal("blip2-requests", "r1", state), "a fresh nonce each time");
        assertEquals(state, c.open("blip2-requests", "r1", sealed));
        assertEquals(0, c.rejected());
        assertNull(c.open("blip2-requests", "r2", sealed), "moved to another entry: does not open");
        assertNull(c.open("blip2-visual-prompts", "r1", sealed), "moved to another map: does not open");
        assertNull(ClusterCipher.of(K2).open("blip2-requests", "r1", sealed), "another cluster's key");
        char[] flipped = sealed.toCharArray();
        flipped[20] = flipped[20] == 'A' ? 'B' : 'A';
        assertNull(c.open("blip2-requests", "r1", new String(flipped)), "a changed byte");
        assertNull(c.open("blip2-requests", "r1", state), "plaintext a foreign member wrote");
        assertNull(c.open("blip2-requests", "r1", "s1.%%%"), "not base64");
        assertEquals(5, c.rejected(), "every refusal counted");
        byte[] floats = new byte[4096];
        new java.util.Random(1).nextBytes(floats);
        assertArrayEquals(floats, c.open("m", "k", c.seal("m", "k", floats)));
        assertNull(c.open("m", "k", new byte[10]), "too short");
    }

    @Test
    void keysRotateAndEntryKeysAreKeyedHashes(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        ClusterCipher old = ClusterCipher.of(K1);
        String written = old.seal("m", "k", "before the rotation");
        Path file = tmp.resolve("cluster.key");
        Files.writeString(file, "# the new key seals, the old one still opens\n" + K2 + "\n\n" + K1 + "\n", StandardCharsets.UTF_8);
        ClusterCipher rotated = ClusterCipher.fromFile(file);
        assertEquals("before the rotation", rotated.open("m", "k", written), "the previous key still opens");
        String fresh = rotated.seal("m", "k", "after");
        assertNull(old.open("m", "k", fresh), "a node without the new key cannot read what it seals");
        assertEquals("after", ClusterCipher.of(K2).open("m", "k", fresh));
        String imageKey = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08|blip2-opt";
        String hidden = old.hashKey(imageKey);
        assertEquals(64, hidden.length());
        assertFalse(hidden.contains("9f86d081"), "the image's hash does not show");
        assertEquals(hidden, ClusterCipher.of(K1).hashKey(imageKey), "the same on every node of the cluster");
        assertNotEquals(hidden, ClusterCipher.of(K2).hashKey(imageKey));
        Files.writeString(file, "not a key\n");
        assertThrows(IllegalArgumentException.class, () -> ClusterCipher.fromFile(file));
        Files.writeString(file, java.util.Base64.getEncoder().encodeToString(new byte[16]));
        assertThrows(IllegalArgumentException.class, () -> ClusterCipher.fromFile(file), "a key is 32 bytes");
    }
}
