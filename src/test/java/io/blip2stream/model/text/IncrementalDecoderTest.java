package io.blip2stream.model.text;

import io.blip2stream.model.Fixtures;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IncrementalDecoderTest {

    @Test
    void aCharacterSplitOverByteTokensIsEmittedOnceWhole() {
        try (TextTokenizer tok = TextTokenizer.load(Fixtures.model("blip2-opt-tiny"))) {
            String text = "a red 🙂 circle é";
            int[] ids = tok.encode(text);
            assertEquals(2, ids[0], "OPT's template puts </s> first");
            int[] body = java.util.Arrays.copyOfRange(ids, 1, ids.length);
            assertTrue(body.length > text.split(" ").length, "the emoji takes several byte-level tokens");
            IncrementalDecoder d = new IncrementalDecoder(tok);
            List<String> pieces = new ArrayList<>();
            for (int id : body) {
                pieces.add(d.add(id));
            }
            pieces.add(d.flush());
            assertEquals(text, String.join("", pieces));
            assertTrue(pieces.contains(" 🙂") || pieces.stream().anyMatch(p -> p.contains("🙂")), pieces.toString());
            for (String p : pieces) {
                assertFalse(p.contains("\uFFFD"), "no piece holds half a character: " + pieces);
            }
            assertEquals(1, pieces.stream().filter(p -> p.contains("🙂")).count());
            assertEquals(text, d.text());
        }
    }

    @Test
    void specialTokensAreLeftOutOfTheText() {
        try (TextTokenizer tok = TextTokenizer.load(Fixtures.model("blip2-opt-tiny"))) {
            int[] ids = tok.encode("a blue square");
            assertEquals("a blue square", tok.decode(ids));
            IncrementalDecoder d = new IncrementalDecoder(tok);
            StringBuilder sb = new StringBuilder();
            for (int id : ids) {
                sb.append(d.add(id));
            }
            sb.append(d.add(2)); // EOS
            assertEquals("a blue square", sb.toString());
            assertArrayEquals(ids, tok.encode("a blue square"));
        }
    }
}
