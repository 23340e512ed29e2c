package io.blip2stream.train;

import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.text.TextTokenizer;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.WebCaptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** CapFilt's parts: the corpora it trains on, and which caption it keeps. */
class CapFiltTest {

    @Test
    void oneOfTheTopTwoIsKeptAndDuplicatesCount() {
        List<String> c = List.of("a", "b", "c", "d");
        Map<String, Integer> kept = new HashMap<>();
        SplittableRandom r = new SplittableRandom(1);
        for (int i = 0; i < 400; i++) {
            kept.merge(CapFilt.keep(c, new double[] {0.1, 0.9, 0.3, 0.8}, r), 1, Integer::sum);
        }
        assertEquals(Set.of("b", "d"), kept.keySet(), "the best and the second best only");
        assertTrue(kept.get("b") > 150 && kept.get("d") > 150, "each about half the time: " + kept);
        // a caption sampled twice holds both top places
        for (int i = 0; i < 50; i++) {
            assertEquals("x", CapFilt.keep(List.of("web text", "x", "y", "x"), new double[] {0.2, 0.9, 0.5, 0.9}, r));
        }
        assertEquals("only", CapFilt.keep(List.of("only"), new double[] {0.4}, r), "one candidate is kept");
        assertThrows(IllegalArgumentException.class, () -> CapFilt.keep(List.of("a"), new double[] {0.1, 0.2}, r));
        assertThrows(IllegalArgumentException.class, () -> CapFilt.keep(List.of(), new double[0], r));
    }

    @Test
    void aCandidatesFileOfAnotherCorpusIsRefusedByName(@TempDir Path dir) throws Exception {
        List<Scene> scenes = List.of(SceneGenerator.sample(SceneGenerator.Split.TRAIN, 0), SceneGenerator.sample(SceneGenerator.Split.TRAIN, 1));
        Path file = dir.resolve(CapFilt.CAPTIONS);
        for (String bad : List.of("[{\"scene\":7,\"candidates\":[\"a\"],\"itm\":[0.5],\"kept\":\"a\"}]",
                "[{\"scene\":-1,\"candidates\":[\"a\"],\"itm\":[0.5],\"kept\":\"a\"}]",
                "[{\"scene\":0,\"candidates\":[\"a\"],\"itm\":[0.5]}]",
                "[{\"scene\":0,\"candidates\":[\"a\"],\"itm\":[0.5],\"kept\":\"a\"}]")) { // scene 1 missing
            java.nio.file.Files.writeString(file, bad);
            java.io.IOException e = assertThrows(java.io.IOException.class,
                    () -> CapFilt.bootstrap(dir.resolve("no-captioner"), dir.resolve("no-filter"), scenes, 1, file, null), bad);
            assertTrue(e.getMessage().contains("delete it to bootstrap again"), e.getMessage());
        }
    }

    @Test
    void aCorpusHasItsOwnScenesAndTextsAndCaptionsAlone(@TempDir Path dir) throws Exception {
        TrainerTest.TINY.writeInitialState(dir, 1);
        try (TextTokenizer tok = TextTokenizer.load(dir)) {
            SceneData data = new SceneData(100, 1, TrainerTest.TINY.imageSize(), PreprocessorConfig.load(dir, TrainerTest.TINY.imageSize()), tok);
            Map<Long, Integer> index = new HashMap<>(); // by seed
            List<Scene> corpus = new java.util.ArrayList<>();
            for (int i = 40; i < 60; i++) {
                corpus.add(SceneGenerator.sample(SceneGenerator.Split.TRAIN, i));
                index.put(corpus.get(corpus.size() - 1).seed(), i);
            }
            SceneData web = data.corpus(40, 20, s -> WebCaptions.of(s, index.get(s.seed())).text());
            assertFalse(web.hasQuestions());
            assertTrue(data.hasQuestions());
            Set<Long> seen = new HashSet<>();
            SplittableRandom r = new SplittableRandom(2);
            for (int step = 0; step < 10; step++) {
                List<Scene> batch = web.batchWithTwins(step, 8, r); // no twins: a twin's caption is not in the corpus
                for (Scene s : batch) {
                    assertTrue(index.containsKey(s.seed()), "only the corpus's scenes");
                    assertEquals(WebCaptions.of(s, index.get(s.seed())).text(), web.caption(s));
                    GenerativeLearning.Text t = GenerativeLearning.text(web, s, r, LanguageModelPretraining.OPT_ANSWER);
                    assertEquals(web.caption(s), t.target(), "captions alone");
                    assertTrue(t.prompt().isEmpty() || t.prompt().equals("a photo of"));
                    seen.add(s.seed());
                }
            }
            assertEquals(20, seen.size(), "every scene of the corpus, in 80 draws of 20");
            long noisy = corpus.stream().filter(s -> !web.caption(s).equals(s.caption())).count();
            assertTrue(noisy >= 4, "the web corpus's texts are its web captions, noise included: " + noisy);
            Scene outside = SceneGenerator.sample(SceneGenerator.Split.TRAIN, 0);
            assertThrows(IllegalArgumentException.class, () -> web.caption(outside));
            Scene twin = SceneGenerator.twin(corpus.get(0), r); // the same seed, another caption: not the corpus's
            assertThrows(IllegalArgumentException.class, () -> web.caption(twin));
            // the recipe's own data: every scene's caption, and questions
            int questions = 0;
            for (int i = 0; i < 100; i++) {
                questions += GenerativeLearning.text(data, outside, r, LanguageModelPretraining.OPT_ANSWER).prompt().startsWith("Question:") ? 1 : 0;
            }
            assertTrue(questions > 30, "half questions: " + questions);
            assertEquals(outside.caption(), data.caption(outside));
        }
    }
}
