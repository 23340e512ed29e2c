package io.blip2stream.train.scenes;

import io.blip2stream.model.image.ImageDecoder;
import io.blip2stream.model.image.RgbImage;
import io.blip2stream.model.text.TextTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SceneTest {
    @TempDir
    Path dir;

    @Test
    void aSceneIsDeterminedByItsSplitAndIndexAndTheSplitsDiffer() {
        for (int i = 0; i < 50; i++) {
            Scene a = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            Scene b = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            assertEquals(a.caption(), b.caption());
            assertEquals(a.items(), b.items());
            assertArrayEquals(SceneRenderer.render(a, 64).pixels(), SceneRenderer.render(b, 64).pixels());
        }
        Set<Long> train = new HashSet<>();
        Set<Long> heldOut = new HashSet<>();
        for (int i = 0; i < 10_000; i++) {
            train.add(SceneGenerator.seedOf(SceneGenerator.Split.TRAIN, i));
            heldOut.add(SceneGenerator.seedOf(SceneGenerator.Split.HELDOUT, i));
        }
        assertEquals(10_000, train.size());
        train.retainAll(heldOut);
        assertTrue(train.isEmpty(), "training and held-out seeds meet");
    }

    @Test
    void attributesAreDrawnEvenlyAndObjectsStayApartInsideTheirPlace() {
        int[] counts = new int[Scene.MAX_COUNT + 1];
        int[] places = new int[Scene.Place.values().length];
        for (int i = 0; i < 5000; i++) {
            Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            counts[s.count()]++;
            places[s.place().ordinal()]++;
            for (Scene.Item it : s.items()) {
                double h = it.size() / 2;
                assertTrue(it.cx() - h >= s.place().x0 - 1e-9 && it.cx() + h <= s.place().x1 + 1e-9, s + " x");
                assertTrue(it.cy() - h >= s.place().y0 - 1e-9 && it.cy() + h <= s.place().y1 + 1e-9, s + " y");
            }
            List<Scene.Item> items = s.items();
            for (int a = 0; a < items.size(); a++) {
                for (int b = a + 1; b < items.size(); b++) {
                    Scene.Item p = items.get(a);
                    Scene.Item q = items.get(b);
                    double need = (p.size() + q.size()) / 2;
                    assertTrue(Math.abs(p.cx() - q.cx()) >= need || Math.abs(p.cy() - q.cy()) >= need, "overlap in " + s);
                }
            }
        }
        for (int c = 1; c <= Scene.MAX_COUNT; c++) {
            assertTrue(counts[c] > 1100 && counts[c] < 1400, "count " + c + ": " + counts[c]);
        }
        for (int p : places) {
            assertTrue(p > 880 && p < 1120, Arrays.toString(places));
        }
    }

    @Test
    void aTwinDiffersInExactlyOneAttributeAndPlacesFlipToTheOppositeSide() {
        SplittableRandom r = new SplittableRandom(9);
        int[] changed = new int[4];
        for (int i = 0; i < 400; i++) {
            Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            Scene t = SceneGenerator.twin(s, r);
            boolean[] diff = {s.count() != t.count(), s.shape() != t.shape(), s.colour() != t.colour(), s.place() != t.place()};
            int n = 0;
            for (int a = 0; a < 4; a++) {
                if (diff[a]) {
                    n++;
                    changed[a]++;
                }
            }
            assertEquals(1, n, s.caption() + " / " + t.caption());
            assertNotEquals(s.caption(), t.caption());
            assertEquals(1, Math.abs(s.count() - t.count()) + (diff[0] ? 0 : 1), "counts change by one");
            if (diff[3] && s.place() != Scene.Place.MIDDLE) {
                assertEquals(s.place().ordinal() ^ 1, t.place().ordinal(), "left<->right, top<->bottom");
            }
        }
        for (int a = 0; a < 4; a++) {
            assertTrue(changed[a] > 60, "every attribute is changed now and then: " + Arrays.toString(changed));
        }
    }

    @Test
    void captionsAndAnswersFollowTheAttributes() {
        Scene two = SceneGenerator.of(2, Scene.Shape.CIRCLE, Scene.Colour.RED, Scene.Place.LEFT, 7);
        assertEquals("two red circles on the left", two.caption());
        Scene one = SceneGenerator.of(1, Scene.Shape.CROSS, Scene.Colour.BLUE, Scene.Place.MIDDLE, 7);
        assertEquals("a blue cross in the middle", one.caption());
        assertEquals("an orange square at the bottom",
                SceneGenerator.of(1, Scene.Shape.SQUARE, Scene.Colour.ORANGE, Scene.Place.BOTTOM, 1).caption());
        assertEquals("four yellow crosses at the top",
                SceneGenerator.of(4, Scene.Shape.CROSS, Scene.Colour.YELLOW, Scene.Place.TOP, 1).caption());
        List<Scene.QuestionAnswer> qs = two.questions(new SplittableRandom(3));
        assertEquals("what color are the circles?", qs.get(0).question());
        assertEquals("red", qs.get(0).answer());
        assertEquals("two", qs.get(1).answer());
        assertEquals("circle", qs.get(2).answer());
        assertEquals("left", qs.get(3).answer());
        assertEquals("where is the cross?", one.questions(new SplittableRandom(3)).get(3).question());
        assertEquals(Scene.Place.RIGHT, two.mirrored().place());
        assertEquals("two red circles on the right", two.mirrored().caption());
        assertTrue(Scene.Place.TOP.survivesHorizontalFlip());
        assertFalse(Scene.Place.LEFT.survivesHorizontalFlip());
    }

    @Test
    void theRenderedImageShowsTheObjectsInTheirColourAndPlace() {
        Scene s = SceneGenerator.of(3, Scene.Shape.SQUARE, Scene.Colour.BLUE, Scene.Place.RIGHT, 11);
        RgbImage img = new ImageDecoder().decode(SceneRenderer.png(s, 64));
        assertEquals(64, img.width());
        int blueLeft = 0;
        int blueRight = 0;
        for (int y = 0; y < 64; y++) {
            for (int x = 0; x < 64; x++) {
                int o = (y * 64 + x) * 3;
                int r = img.pixels()[o] & 0xff;
                int b = img.pixels()[o + 2] & 0xff;
                if (b > 180 && r < 80) {
                    if (x < 32) {
                        blueLeft++;
                    } else {
                        blueRight++;
                    }
                }
            }
        }
        assertEquals(0, blueLeft);
        assertTrue(blueRight > 3 * 40, "three squares of about 8 px: " + blueRight + " blue pixels");
        assertArrayEquals(SceneRenderer.render(s, 64).pixels(), img.pixels(), "the PNG holds the rendered pixels");
    }

    /**
     * Issue 25: the byte-level BPE, written as tokenizer.json, encodes in the tokenizers library (what serving and
     * transformers run) exactly as the Java BPE that learnt it; every text decodes back (lower-cased), the held-out
     * phrasings and words never seen included, with no unknown token; every scene word is one token.
     */
    @Test
    void theTokenizerEncodesEveryTextAsItsBpeDoesAndDecodesItBack() throws Exception {
        SceneTokenizer.write(dir);
        try (TextTokenizer tok = TextTokenizer.load(dir)) {
            SplittableRandom r = new SplittableRandom(5);
            List<String> texts = new java.util.ArrayList<>(List.of("What Colour are the ITEMS in the pic?", "zebra", "café ☕ naïve",
                    "how many  shapes\tare there?", "Question: are the figures purple? Answer: no", ""));
            for (int i = 0; i < 300; i++) {
                Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
                texts.add(s.caption());
                texts.add("a photo of " + s.caption());
                for (Phrasings.Set set : Phrasings.Set.values()) {
                    for (Scene.QuestionAnswer qa : s.questions(r, set)) {
                        texts.add("Question: " + qa.question() + " Answer: " + qa.answer());
                    }
                }
            }
            for (String text : texts) {
                int[] ids = tok.encode(text);
                assertEquals(SceneTokenizer.EOS, ids[0], "encoding starts with </s>, as OPT's");
                int[] bpe = SceneTokenizer.bpe().encode(text);
                assertArrayEquals(bpe, Arrays.copyOfRange(ids, 1, ids.length), text);
                assertFalse(Arrays.stream(ids).anyMatch(id -> id == SceneTokenizer.UNK), text);
                assertEquals(text.toLowerCase(java.util.Locale.ROOT), tok.decode(ids), "decodes back");
            }
            for (String w : List.of("red", "purple", "circle", "circles", "crosses", "one", "four", "left", "middle", "yes", "no")) {
                int[] with = tok.encode("is it " + w);
                assertEquals(tok.encode("is it").length + 1, with.length, w + " is one token after a space");
                assertEquals(SceneTokenizer.word(w), with[with.length - 1]);
            }
            assertTrue(tok.encode("zebra").length > 2, "a word never seen is several tokens, not an unknown one");
            assertEquals(0, SceneTokenizer.vocabSize() % 8);
            assertTrue(SceneTokenizer.vocabSize() <= 1024, "vocabulary " + SceneTokenizer.vocabSize());
        }
    }

    /**
     * The T5 model's tokenizer.json: the same BPE, with T5's template (the text, then {@code </s>}) and a decoder that
     * drops the space in front of the first word, as T5's drops the first "▁": a target " two red circles" (every
     * word one token) decodes to "two red circles", and a streamed decode, piece by piece, gives the same.
     */
    @Test
    void theT5TokenizerEndsATextWithEosAndDecodesWordsWithoutTheirFirstSpace(@TempDir Path t5Dir) throws Exception {
        SceneTokenizer.write(t5Dir, true);
        try (TextTokenizer tok = TextTokenizer.load(t5Dir)) {
            int[] ids = tok.encode("Question: what color are the circles? Short answer:");
            assertEquals(SceneTokenizer.EOS, ids[ids.length - 1], "T5's template ends a text with </s>");
            assertArrayEquals(SceneTokenizer.bpe().encode("Question: what color are the circles? Short answer:"),
                    Arrays.copyOf(ids, ids.length - 1));
            assertArrayEquals(new int[] {SceneTokenizer.EOS}, tok.encode(""), "the empty prompt is </s> alone, as T5's");
            int[] target = SceneTokenizer.bpe().encode(" two red circles");
            assertArrayEquals(new int[] {SceneTokenizer.word("two"), SceneTokenizer.word("red"), SceneTokenizer.word("circles")}, target);
            assertEquals("two red circles", tok.decode(target));
            StringBuilder streamed = new StringBuilder();
            io.blip2stream.model.text.IncrementalDecoder d = new io.blip2stream.model.text.IncrementalDecoder(tok);
            for (int id : target) {
                streamed.append(d.add(id));
            }
            assertEquals("two red circles", streamed.toString());
        }
    }
}
