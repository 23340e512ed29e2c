package io.blip2stream.train;

import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.text.TextTokenizer;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LanguageModelPretrainingTest {

    @Test
    void aDocumentHoldsOneToFourTextsAboutItsSceneInNoFixedOrder(@TempDir Path dir) throws Exception {
        TrainerTest.TINY.writeInitialState(dir, 1);
        try (TextTokenizer tok = TextTokenizer.load(dir)) {
            SceneData data = new SceneData(100, 1, TrainerTest.TINY.imageSize(), PreprocessorConfig.load(dir, TrainerTest.TINY.imageSize()), tok);
            SplittableRandom r = new SplittableRandom(3);
            int[] texts = new int[LanguageModelPretraining.MAX_TEXTS + 1];
            int captionNotFirst = 0;
            int endInYesNo = 0;
            int startWithTags = 0;
            for (int i = 0; i < 400; i++) {
                Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i % 100);
                int[] ids = LanguageModelPretraining.document(data, s, r);
                assertEquals(SceneTokenizer.EOS, ids[0]);
                assertEquals(SceneTokenizer.EOS, ids[ids.length - 1]);
                java.util.List<String> parts = new java.util.ArrayList<>();
                int start = 1;
                for (int j = 1; j < ids.length; j++) {
                    if (ids[j] == SceneTokenizer.EOS) {
                        parts.add(tok.decode(ids, start, j).strip().toLowerCase(java.util.Locale.ROOT));
                        start = j + 1;
                    }
                }
                java.util.Set<String> sceneWords = new java.util.TreeSet<>(java.util.List.of(
                        new String[] {"one", "two", "three", "four"}[s.count() - 1], s.colour().word(), s.place().word()));
                if (!(parts.get(0).startsWith("question") || parts.get(0).contains(s.caption()))) {
                    // the scene's words in no order: count, colour, shape (either number), place
                    java.util.List<String> words = new java.util.ArrayList<>(java.util.List.of(parts.remove(0).split(" ")));
                    assertTrue(words.remove(s.shape().noun(1)) || words.remove(s.shape().noun(2)), words + " name the shape of " + s.caption());
                    assertEquals(sceneWords, new java.util.TreeSet<>(words), "the other words of " + s.caption());
                    startWithTags++;
                }
                texts[parts.size()]++;
                for (String p : parts) {
                    assertTrue(p.equals(s.caption()) || p.equals("a photo of " + s.caption())
                            || (p.startsWith("question") && p.contains("answer")), p + " is about " + s.caption());
                }
                captionNotFirst += parts.indexOf(s.caption()) > 0 ? 1 : 0;
                String last = parts.get(parts.size() - 1);
                if (parts.size() > 1 && last.startsWith("question: ") && (last.endsWith(" answer: yes") || last.endsWith(" answer: no"))) {
                    endInYesNo++;
                }
            }
            for (int n = 1; n <= LanguageModelPretraining.MAX_TEXTS; n++) {
                assertTrue(texts[n] > 30, "documents of " + n + " texts: " + texts[n]);
            }
            assertTrue(endInYesNo > 120 && endInYesNo < 200, "a third of the documents (and some random ones) end in the yes/no question after other texts: "
                    + endInYesNo);
            assertTrue(startWithTags > 70 && startWithTags < 130, "a quarter start with the scene's words: " + startWithTags);
            assertTrue(captionNotFirst > 40, "the caption also comes after other texts: " + captionNotFirst);
        }
    }

    @Test
    void contextAccuracyCountsOnlyWordsAnEarlierTextSaid() {
        int vocab = SceneTokenizer.vocabSize();
        // </s> red </s> a red circle </s> <pad>: "red" in the second text can be copied, "circle" cannot,
        // and "a" is no attribute word
        int[][] ids = {{SceneTokenizer.EOS, SceneTokenizer.word("red"), SceneTokenizer.EOS, SceneTokenizer.word("a"), SceneTokenizer.word("red"), SceneTokenizer.word("circle"),
                SceneTokenizer.EOS, SceneTokenizer.PAD}};
        int[][] mask = {{1, 1, 1, 1, 1, 1, 1, 0}};
        int t = ids[0].length;
        float[] right = new float[t * vocab];
        float[] wrong = new float[t * vocab];
        for (int j = 0; j + 1 < t; j++) {
            right[j * vocab + ids[0][j + 1]] = 1f;
            wrong[j * vocab + SceneTokenizer.word("blue")] = 1f;
        }
        double[] good = LanguageModelPretraining.contextAccuracy(ids, mask, right, vocab);
        double[] bad = LanguageModelPretraining.contextAccuracy(ids, mask, wrong, vocab);
        assertEquals(1.0, good[1], "colour copied");
        assertEquals(0.0, bad[1], "colour not copied");
        assertTrue(Double.isNaN(good[2]), "the shape was not said before");
        assertTrue(Double.isNaN(good[0]) && Double.isNaN(good[3]), "no count or place words");
    }

    @Test
    void yesNoAccuracyCountsOnlyAnswersAfterAColourWasNamed() {
        int vocab = SceneTokenizer.vocabSize();
        // </s> red </s> yes </s> | </s> circle </s> no </s>: only the first row's answer follows a colour
        int[][] ids = {{SceneTokenizer.EOS, SceneTokenizer.word("red"), SceneTokenizer.EOS, SceneTokenizer.word("yes"), SceneTokenizer.EOS},
                {SceneTokenizer.EOS, SceneTokenizer.word("circle"), SceneTokenizer.EOS, SceneTokenizer.word("no"), SceneTokenizer.EOS}};
        int[][] mask = {{1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}};
        int t = 5;
        float[] logits = new float[2 * t * vocab];
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j + 1 < t; j++) {
                logits[(i * t + j) * vocab + SceneTokenizer.word("no")] = 1f; // always "no": wrong on row 0, right on row 1
            }
        }
        assertEquals(0.0, LanguageModelPretraining.yesNoAccuracy(ids, mask, logits, vocab), 1e-9);
        logits[(2) * vocab + SceneTokenizer.word("yes")] = 2f; // row 0 predicts "yes" before its answer
        assertEquals(1.0, LanguageModelPretraining.yesNoAccuracy(ids, mask, logits, vocab), 1e-9);
        assertTrue(Double.isNaN(LanguageModelPretraining.yesNoAccuracy(new int[][] {ids[1]}, new int[][] {mask[1]},
                java.util.Arrays.copyOfRange(logits, t * vocab, 2 * t * vocab), vocab)), "none counted: NaN");
    }
}
