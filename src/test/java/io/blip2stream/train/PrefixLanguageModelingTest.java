package io.blip2stream.train;

import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.text.TextTokenizer;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The T5's pretraining examples: what the encoder reads, what the decoder writes, and how a batch is laid out. */
class PrefixLanguageModelingTest {

    @Test
    void theEncoderReadsTextsAndAPrefixAndTheDecoderWritesTheRest(@TempDir Path dir) throws Exception {
        TrainerTest.TINY.writeInitialState(dir, 1);
        try (TextTokenizer tok = TextTokenizer.load(dir)) {
            SceneData data = new SceneData(100, 1, TrainerTest.TINY.imageSize(), PreprocessorConfig.load(dir, TrainerTest.TINY.imageSize()), tok);
            SplittableRandom r = new SplittableRandom(3);
            int answers = 0;
            int yesNoAfterColour = 0;
            int photoCaptions = 0;
            int wholeCaptions = 0;
            int splitCaptions = 0;
            for (int i = 0; i < 400; i++) {
                Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i % 100);
                PrefixLanguageModeling.Example e = PrefixLanguageModeling.example(data, s, r);
                int[] enc = e.encoderIds();
                int[] y = e.targetIds();
                assertEquals(SceneTokenizer.EOS, enc[enc.length - 1], "the encoder's input ends in </s>, as T5's template");
                assertEquals(SceneTokenizer.EOS, y[y.length - 1], "the target ends in </s>");
                assertTrue(Arrays.stream(y, 0, y.length - 1).noneMatch(t -> t == SceneTokenizer.EOS), "one text is the target");
                for (int k = 0; k < y.length - 1; k++) {
                    assertTrue(SceneTokenizer.bpe().encode(" " + tok.decode(new int[] {y[k]}).strip()).length == 1,
                            "every target word is its one token after a space: " + Arrays.toString(y));
                }
                List<String> parts = new ArrayList<>();
                int start = 0;
                for (int j = 0; j < enc.length; j++) {
                    if (enc[j] == SceneTokenizer.EOS) {
                        parts.add(tok.decode(enc, start, j).strip().toLowerCase(Locale.ROOT));
                        start = j + 1;
                    }
                }
                String prefix = parts.get(parts.size() - 1);
                String target = tok.decode(Arrays.copyOf(y, y.length - 1)).strip();
                String whole = (prefix + " " + target).strip();
                if (prefix.startsWith("question: ")) {
                    assertTrue(prefix.endsWith(" short answer:"), "FlanT5's cue: " + prefix);
                    assertTrue(List.of("yes", "no", "one", "two", "three", "four", s.colour().word(), s.shape().noun(1),
                            s.shape().noun(2), s.place().word()).contains(target), target + " answers " + prefix);
                    answers++;
                    if ((target.equals("yes") || target.equals("no")) && parts.size() > 1) {
                        yesNoAfterColour++;
                    }
                } else if (prefix.equals("a photo of")) {
                    assertEquals(s.caption(), target);
                    photoCaptions++;
                } else {
                    assertEquals(s.caption(), whole, "a caption split at a word");
                    if (prefix.isEmpty()) {
                        wholeCaptions++;
                    } else {
                        splitCaptions++;
                    }
                }
                assertEquals(whole, whole.toLowerCase(Locale.ROOT));
            }
            assertTrue(answers > 200, "questions: " + answers);
            assertTrue(yesNoAfterColour > 100, "yes/no after other texts: " + yesNoAfterColour);
            assertTrue(photoCaptions > 20 && wholeCaptions > 20 && splitCaptions > 10,
                    photoCaptions + " 'a photo of', " + wholeCaptions + " whole, " + splitCaptions + " split");
        }
    }

    @Test
    void theDecoderStartsFromPadAndReadsTheTargetShiftedRight() {
        int red = SceneTokenizer.word("red");
        int yes = SceneTokenizer.word("yes");
        PrefixLanguageModeling.DecoderBatch b = PrefixLanguageModeling.DecoderBatch.of(List.of(
                new int[] {red, red, SceneTokenizer.EOS}, new int[] {yes, SceneTokenizer.EOS}));
        assertArrayEquals(new int[] {SceneTokenizer.PAD, red, red}, b.inputs()[0]);
        assertArrayEquals(new int[] {SceneTokenizer.PAD, yes, SceneTokenizer.PAD}, b.inputs()[1]);
        assertArrayEquals(new int[] {1, 1, 1}, b.mask()[0]);
        assertArrayEquals(new int[] {1, 1, 0}, b.mask()[1], "the start token <pad> is real; the padding after is not");
        assertArrayEquals(new int[] {red, red, SceneTokenizer.EOS, yes, SceneTokenizer.EOS, -1}, b.labels());
    }

    @Test
    void copyAccuracyCountsWordsTheEncoderReadAndYesNoAfterAColour() {
        int red = SceneTokenizer.word("red");
        int blue = SceneTokenizer.word("blue");
        int yes = SceneTokenizer.word("yes");
        int v = SceneTokenizer.vocabSize();
        int[][] encoder = {{red, SceneTokenizer.EOS}, {SceneTokenizer.EOS}};
        int[] labels = {red, SceneTokenizer.EOS, blue, yes};
        float[] logits = new float[4 * v];
        logits[red] = 1;                  // row 0 (encoder read red): right
        logits[v + SceneTokenizer.EOS] = 1;
        logits[2 * v + red] = 1;          // row 1: blue was never read, not counted
        logits[3 * v + yes] = 1;          // yes without a colour read: not counted
        double[] acc = PrefixLanguageModeling.copyAccuracy(encoder, labels, logits, v);
        assertEquals(1.0, acc[1], "colour");
        assertTrue(Double.isNaN(acc[0]) && Double.isNaN(acc[acc.length - 1]), Arrays.toString(acc));
    }
}
