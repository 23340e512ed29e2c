package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The records' JSON Schemas: each one well formed and named as served; every JSON example in README.md says which
 * schema it follows (or that it is not a record) and follows it; and the schemas refuse what the service refuses
 * or never writes, so a schema that accepts anything would fail here.
 */
class SchemasTest {
    /** {@code <!-- schema: NAME -->} or {@code <!-- not a record: WHY -->} on the line before each ```json block. */
    static final Pattern BLOCK = Pattern.compile("(?m)^(<!-- (schema: ([a-z-]+)|not a record: [^>]+) -->)?\\n```json\\n(.*?)\\n```", Pattern.DOTALL);

    @Test
    void everySchemaIsDraft202012AndNamedAsItIsServed() {
        assertEquals(7, Schemas.NAMES.size());
        for (String name : Schemas.NAMES) {
            JsonNode s = Schemas.json(name);
            assertEquals("https://json-schema.org/draft/2020-12/schema", s.path("$schema").asText(), name);
            assertEquals("urn:blip2-stream:schemas:" + name, s.path("$id").asText(), name);
            assertEquals(name, s.path("title").asText(), name);
            assertFalse(s.path("description").asText().isBlank(), name + " says what it is");
        }
        assertEquals(null, Schemas.bytes("../application"));
        assertEquals(null, Schemas.bytes(null));
    }

    @Test
    void everyJsonExampleInTheReadmeFollowsTheSchemaItNames() throws Exception {
        String readme = Files.readString(Path.of("README.md")).replace("\r\n", "\n");
        Matcher m = BLOCK.matcher(readme);
        List<String> checked = new ArrayList<>();
        int blocks = 0;
        while (m.find()) {
            blocks++;
            assertNotNull(m.group(1), "a ```json block in README.md without <!-- schema: NAME --> or <!-- not a record: ... --> before it:\n"
                    + m.group(4));
            if (m.group(3) != null) {
                assertTrue(Schemas.NAMES.contains(m.group(3)), "README names the schema " + m.group(3));
                RecordSchemas.assertValid(m.group(3), m.group(4), "README's example of " + m.group(3));
                checked.add(m.group(3));
            }
        }
        assertEquals(blocks, readme.split("```json\n", -1).length - 1, "every ```json block was read");
        for (String name : List.of("request", "caption", "answer", "match", "embedding", "token", "dead-letter")) {
            assertTrue(checked.contains(name), "README shows an example of " + name + " (it shows " + checked + ")");
        }
    }

    @Test
    void theSchemasRefuseWhatTheServiceRefusesOrNeverWrites() {
        String img = "\"image\":\"iVBORw0KGgo=\"";
        for (String bad : List.of(
                "{\"image\":\"x\"}",                                                   // no task
                "{\"task\":\"paint\"," + img + "}",                                     // unknown task
                "{\"task\":\"caption\"}",                                               // no image
                "{\"task\":\"caption\"," + img + ",\"image_url\":\"https://x/y.png\"}", // both
                "{\"task\":\"vqa\"," + img + "}",                                       // vqa without a question
                "{\"task\":\"match\"," + img + "}",                                     // match without texts
                "{\"task\":\"caption\"," + img + ",\"params\":{\"beams\":2}}",          // an unknown parameter
                "{\"task\":\"caption\"," + img + ",\"params\":{\"top_p\":1.5}}",
                "{\"task\":\"caption\"," + img + ",\"deadline_ms\":0}",
                "{\"task\":\"caption\"," + img + ",\"id\":\"" + "x".repeat(257) + "\"}",
                "{\"task\":\"caption\",\"image_url\":\"  \"}",                          // a blank URL is no image
                "{\"task\":\"vqa\"," + img + ",\"question\":\" \"}")) {
            assertFalse(RecordSchemas.validate("request", bad).getValid(), "the request schema refuses " + bad);
        }
        assertTrue(RecordSchemas.validate("request", "{\"task\":\"embed\",\"texts\":[\"a cat\"]}").getValid());
        // what the service takes: null for an absent field, an empty image beside an image_url
        assertTrue(RecordSchemas.validate("request", "{\"task\":\"caption\"," + img + ",\"prompt\":null,\"stream\":null,"
                + "\"image_url\":null,\"deadline_ms\":null,\"params\":null,\"id\":null}").getValid());
        assertTrue(RecordSchemas.validate("request", "{\"task\":\"caption\",\"image\":\"\",\"image_url\":\"https://x/y.png\"}").getValid());
        assertTrue(RecordSchemas.validate("request", "{\"task\":\"caption\",\"image_url\":\"https://x/y.png\"}").getValid());
        String caption = "{\"id\":\"r\",\"task\":\"caption\",\"text\":\"a\",\"token_ids\":[1],\"finish_reason\":\"eos\",\"model\":\"m\","
                + "\"timings\":{\"queued_ms\":0,\"preprocess_ms\":0,\"vision_ms\":0,\"qformer_ms\":0,\"prefill_ms\":0,\"decode_ms\":0,"
                + "\"total_ms\":0,\"visual_prompt\":\"cached\"},\"node\":\"n\"}";
        assertTrue(RecordSchemas.validate("caption", caption).getValid());
        assertFalse(RecordSchemas.validate("caption", caption.replace("\"node\":\"n\"", "\"node\":\"n\",\"extra\":1")).getValid(),
                "a field the schema does not know is refused in outputs: a new field needs its schema changed");
        assertFalse(RecordSchemas.validate("answer", caption).getValid(), "a caption is not an answer");
        assertFalse(RecordSchemas.validate("caption", caption.replace("eos", "done")).getValid());
        assertFalse(RecordSchemas.validate("token", "{\"id\":\"r\",\"index\":-1,\"token_id\":5,\"text\":\"a\"}").getValid());
        assertFalse(RecordSchemas.validate("dead-letter", "{\"blip2-error-code\":\"oops\",\"blip2-error-message\":\"m\","
                + "\"blip2-source-topic\":\"t\",\"blip2-source-partition\":\"0\",\"blip2-source-offset\":\"1\"}").getValid());
        assertFalse(RecordSchemas.validate("embedding", "{\"id\":\"r\",\"task\":\"embed\",\"model\":\"m\",\"node\":\"n\",\"timings\":"
                + "{\"queued_ms\":0,\"preprocess_ms\":0,\"vision_ms\":0,\"qformer_ms\":0,\"prefill_ms\":0,\"decode_ms\":0,\"total_ms\":0}}").getValid(),
                "an embedding of nothing");
    }
}
