package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The records' JSON Schemas: each one well formed and named as served; every JSON example in README.md and docs/*.md
 * says which schema it follows (or that it is not a record) and follows it; and the schemas refuse what the service refuses
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

    /**
     * README.md and every docs/*.md: each ```json block says what it is and follows the schema it names. README shows
     * an example of every schema (the records are the API: its reader sees them all without leaving it); docs/ may
     * show more, and they are checked the same way.
     */
    @Test
    void everyJsonExampleInTheReadmeAndDocsFollowsTheSchemaItNames() throws Exception {
        List<String> inReadme = checkJsonBlocks(Path.of("README.md"));
        for (String name : List.of("request", "caption", "answer", "match", "embedding", "token", "dead-letter")) {
            assertTrue(inReadme.contains(name), "README shows an example of " + name + " (it shows " + inReadme + ")");
        }
        List<Path> docs;
        try (Stream<Path> s = Files.list(Path.of("docs"))) {
            docs = s.filter(p -> p.toString().endsWith(".md")).sorted().toList();
        }
        assertFalse(docs.isEmpty(), "docs/ has Markdown files");
        for (Path doc : docs) {
            checkJsonBlocks(doc);
        }
    }

    /** A block without its comment, or one that does not follow its schema, fails naming the file. */
    @Test
    void aJsonBlockWithoutItsCommentOrAgainstItsSchemaFails(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path bare = tmp.resolve("bare.md");
        Files.writeString(bare, "# x\n\n```json\n{\"id\": \"r\"}\n```\n");
        AssertionError e = org.junit.jupiter.api.Assertions.assertThrows(AssertionError.class, () -> checkJsonBlocks(bare));
        assertTrue(e.getMessage().contains("bare.md"), e.getMessage());
        Path wrong = tmp.resolve("wrong.md");
        Files.writeString(wrong, "<!-- schema: token -->\n```json\n{\"id\": \"r\", \"index\": -1, \"token_id\": 5, \"text\": \"a\"}\n```\n");
        org.junit.jupiter.api.Assertions.assertThrows(AssertionError.class, () -> checkJsonBlocks(wrong));
        Path fine = tmp.resolve("fine.md");
        Files.writeString(fine, "<!-- not a record: the command line's output -->\n```json\n{\"text\": \"a\"}\n```\n");
        assertEquals(List.of(), checkJsonBlocks(fine));
    }

    /** Checks every ```json block of {@code doc}; returns the schemas its examples follow. */
    static List<String> checkJsonBlocks(Path doc) throws Exception {
        String text = Files.readString(doc).replace("\r\n", "\n");
        Matcher m = BLOCK.matcher(text);
        List<String> checked = new ArrayList<>();
        int blocks = 0;
        while (m.find()) {
            blocks++;
            assertNotNull(m.group(1), "a ```json block in " + doc + " without <!-- schema: NAME --> or <!-- not a record: ... --> before it:\n"
                    + m.group(4));
            if (m.group(3) != null) {
                assertTrue(Schemas.NAMES.contains(m.group(3)), doc + " names the schema " + m.group(3));
                RecordSchemas.assertValid(m.group(3), m.group(4), doc + "'s example of " + m.group(3));
                checked.add(m.group(3));
            }
        }
        assertEquals(blocks, text.split("```json\n", -1).length - 1, "every ```json block of " + doc + " was read");
        return checked;
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
