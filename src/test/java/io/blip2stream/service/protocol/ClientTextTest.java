package io.blip2stream.service.protocol;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Client text in messages and logs: no line it holds can forge a log line, and no value is unbounded. */
class ClientTextTest {
    @Test
    void controlCharactersAndSeparatorsAreEscaped() {
        String evil = "key\nINFO forged line\r\u2028\u0000\u001b[31m\ud800";
        String safe = ClientText.log(evil);
        assertEquals("key\\nINFO forged line\\r\\u2028\\u0000\\u001b[31m\\ud800", safe);
        for (char c : safe.toCharArray()) {
            assertFalse(Character.isISOControl(c), "no control character left: " + (int) c);
        }
        assertEquals("a 😀 b", ClientText.quote("a 😀 b"), "a whole surrogate pair is text");
        assertEquals("null", ClientText.log((byte[]) null));
        assertEquals("\\n", ClientText.log("\n".getBytes()));
    }

    @Test
    void longValuesAreCutSayingHowLongTheyWere() {
        String q = ClientText.quote("x".repeat(1_000_000));
        assertTrue(q.length() < 100, q);
        assertTrue(q.endsWith("...(1000000 characters)"), q);
        assertTrue(ClientText.log("y".repeat(10_000)).length() < 300);
    }
}
