package io.blip2stream.service.protocol;

import io.blip2stream.engine.RequestError;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 24: what is not JSON is refused in a client's words, saying what and where, never in the parser's. */
class JsonInputTest {

    static String refusal(String json) {
        RequestError e = assertThrows(RequestError.class, () -> JsonInput.read(json, "params", RequestError.INVALID_PARAMS));
        assertEquals(RequestError.INVALID_PARAMS, e.code());
        assertFalse(e.getMessage().contains("was expecting") || e.getMessage().contains("REDACTED")
                || e.getMessage().contains("Source") || e.getMessage().contains("code 1"), e.getMessage());
        return e.getMessage();
    }

    @Test
    void eachKindOfMistakeIsNamedWithItsPlace() {
        assertEquals("params is not JSON: unexpected 'notjson' (text must be in double quotes) at line 1, column 1", refusal("notjson"));
        assertEquals("params is not JSON: unexpected 'caption' (text must be in double quotes) at line 1, column 10",
                refusal("{\"task\": caption}"));
        assertEquals("params is not JSON: it ends before the JSON does (a missing } ] or \") at line 1, column 7", refusal("{\"a\":1"));
        assertEquals("params is not JSON: unexpected single quote (JSON takes double quotes) where a field name in double quotes "
                + "belongs at line 1, column 2", refusal("{'a':1}"));
        assertEquals("params is not JSON: a closing bracket that does not match at line 1, column 5", refusal("[1,2}"));
        assertEquals("params is not JSON: control character 1 inside a string (escape it) at line 1, column 8", refusal("{\"a\":\"x\u0001\"}"));
        assertEquals("params is not JSON: unexpected '}' where a field name in double quotes belongs at line 2, column 1", refusal("{\"a\":1,\n}"));
        assertTrue(refusal("{\"a\": 01}").startsWith("params is not JSON: invalid numeric value"));
        assertEquals("params is not JSON: it is nested deeper than the 1000 levels read",
                refusal("[".repeat(1001) + "]".repeat(1001)));
        // a client's text in the message is escaped and cut (no forged log lines, no megabyte echoes)
        String longToken = refusal("x".repeat(100_000) + "\nforged");
        assertTrue(longToken.length() < 300 && !longToken.contains("\n"), longToken);
        assertEquals(7, JsonInput.read("{\"max_new_tokens\":7}".getBytes(), "params", RequestError.INVALID_PARAMS).get("max_new_tokens").asInt());
    }
}
