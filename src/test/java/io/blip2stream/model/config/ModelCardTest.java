package io.blip2stream.model.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 24, the page's model card: the first paragraph of a checkpoint's README.md and its widget examples, read from
 * the checkpoint's own folder only, and never an error (a card is documentation).
 */
class ModelCardTest {
    @TempDir
    Path tmp;

    static final byte[] PNG = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0};

    @Test
    void theShippedSceneModelSaysWhatItKnowsAndOffersExamples() {
        ModelCard card = ModelCard.read(Path.of("models/blip2-scenes-opt"));
        assertTrue(card.summary().startsWith("A BLIP-2 checkpoint (Blip2ForConditionalGeneration) trained from scratch")
                && card.summary().contains("It knows nothing else"), card.summary());
        assertEquals(8, card.examples().size());
        assertEquals("three red crosses on the right", card.examples().get(0).expected());
        assertEquals(null, card.examples().get(0).question());
        assertEquals("what color are the crosses?", card.examples().get(4).question());
        assertEquals("yellow", card.examples().get(4).expected());
        assertEquals("yes", card.examples().get(7).expected(), "quoted in the YAML: a bare yes would be read as true");
        card.examples().forEach(e -> assertEquals("image/png", e.mediaType()));
    }

    @Test
    void aHubCardGivesItsFirstParagraph() throws Exception {
        Files.writeString(tmp.resolve("README.md"), "---\nlicense: mit\ntags:\n- vision\npipeline_tag: image-to-text\n---\n\n"
                + "# BLIP-2, OPT-2.7b, pre-trained only\n\n![diagram](x.png)\n\nBLIP-2 model, leveraging [OPT-2.7b](https://x) (a large\n"
                + "language model with 2.7 billion parameters).\n\nSecond paragraph.\n");
        ModelCard card = ModelCard.read(tmp);
        assertEquals("BLIP-2 model, leveraging OPT-2.7b (a large language model with 2.7 billion parameters).", card.summary());
        assertEquals(List.of(), card.examples());
        assertEquals(ModelCard.NONE, ModelCard.read(tmp.resolve("nowhere")));
    }

    @Test
    void examplesComeOnlyFromTheCheckpointsFolderAndAreImages() throws Exception {
        Path model = Files.createDirectories(tmp.resolve("model"));
        Files.write(model.resolve("ok.png"), PNG);
        Files.writeString(model.resolve("text.png"), "not an image");
        Files.write(tmp.resolve("outside.png"), PNG);
        Files.createSymbolicLink(model.resolve("link.png"), tmp.resolve("outside.png"));
        Files.write(model.resolve("huge.png"), java.util.Arrays.copyOf(PNG, ModelCard.MAX_EXAMPLE_BYTES + 1));
        StringBuilder w = new StringBuilder("---\nwidget:\n");
        for (String src : List.of("ok.png", "../outside.png", "/etc/passwd", "https://example.com/a.png", "file:ok.png", "link.png",
                "text.png", "huge.png", "missing.png", "")) {
            w.append("- src: \"").append(src).append("\"\n  example_title: t\n");
        }
        w.append("- src: ok.png\n  text: what is it?\n  output:\n    text: a square\n");
        Files.writeString(model.resolve("README.md"), w + "---\n# m\n\nA model.\n");
        ModelCard card = ModelCard.read(model);
        assertEquals("A model.", card.summary());
        assertEquals(2, card.examples().size(), card.examples().toString());
        assertEquals("t", card.examples().get(0).title());
        assertEquals("what is it?", card.examples().get(1).question());
        assertEquals("what is it?", card.examples().get(1).title());
        assertEquals("a square", card.examples().get(1).expected());
        // a card that is a link to another file is no card (GET /v1/info would publish that file's first paragraph)
        Path linked = Files.createDirectories(tmp.resolve("linked"));
        Files.writeString(tmp.resolve("secret.md"), "the first paragraph of a file elsewhere\n");
        Files.createSymbolicLink(linked.resolve("README.md"), tmp.resolve("secret.md"));
        assertEquals(ModelCard.NONE, ModelCard.read(linked));
        // a paragraph of half a megabyte of brackets: cut first, read at once
        Files.writeString(model.resolve("README.md"), "[".repeat(1 << 19) + "](" + "\n");
        long t0 = System.nanoTime();
        assertEquals(ModelCard.MAX_SUMMARY_CHARS, ModelCard.read(model).summary().length());
        assertTrue(System.nanoTime() - t0 < 2_000_000_000L, "not quadratic in the paragraph");
        // a malformed header still leaves the card's text
        Files.writeString(model.resolve("README.md"), "---\nwidget: [unclosed\n---\nJust text.\n");
        assertEquals("Just text.", ModelCard.read(model).summary());
    }
}
