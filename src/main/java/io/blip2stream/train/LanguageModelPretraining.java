package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import io.blip2stream.train.scenes.Phrasings;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * The "off-the-shelf" language model: the OPT-style decoder trained from scratch on the scenes' text alone
 * (captions, "a photo of" captions, and question/answer pairs in BLIP-2's VQA template, one to four of them about the
 * same scene in one document), next-token prediction, then frozen for BLIP-2. Its curve reports how well it copies
 * each kind of attribute word from its context ({@link #contextAccuracy}).
 */
final class LanguageModelPretraining {
    private LanguageModelPretraining() {}

    static final Predicate<String> PARAMETERS = n -> n.startsWith("language_model.");

    /** A text about a scene in one of the three forms stage 2 uses, drawn by {@code r}. */
    static String text(Scene s, SplittableRandom r) {
        return text(s, r, OPT_ANSWER);
    }

    /** BLIP-2's VQA cue after the question: OPT's, and FlanT5's. */
    static final String OPT_ANSWER = "Answer:";
    static final String T5_ANSWER = "Short answer:";

    /** {@link #text(Scene, SplittableRandom)} with the question template's answer cue. */
    static String text(Scene s, SplittableRandom r, String answerCue) {
        int kind = r.nextInt(4); // a caption half the time, a question and its answer the other half
        if (kind == 0) {
            return s.caption();
        }
        if (kind == 1) {
            return "a photo of " + s.caption();
        }
        List<Scene.QuestionAnswer> qs = s.questions(r, Phrasings.Set.TRAINING_NOISY);
        Scene.QuestionAnswer qa = qs.get(r.nextInt(qs.size()));
        return "Question: " + qa.question() + " " + answerCue + " " + qa.answer();
    }

    /** The most texts one document holds. */
    static final int MAX_TEXTS = 4;

    /**
     * A document about one scene, as token ids: one to {@value #MAX_TEXTS} texts about the same scene, each drawn
     * independently and in no fixed order ({@code </s> text </s> text ... </s>}). What a later text says (an
     * answer, a caption said again) can often be read from an earlier one, wherever in the document that stood: so
     * the model learns to find a word in its context by what the word is, not by where it stands, as a large
     * language model reads a document. That is what stage 2 needs: the visual prompt comes first, and the queries
     * say what is in the image without being a sentence. A quarter of the documents start with the scene's words in no
     * order ({@link #tags}). A third end in the yes/no question about
     * the scene's colour after one to three other texts: answering it means comparing the colour asked with the colour
     * said before, a skill that mere copying does not teach. With half of them ending so (no tags), the model learnt
     * yes/no by step ~3400 but to copy shape words only from step ~4800 (0.93 at 6000); with a quarter, shape by step
     * 1000 and yes/no by step ~2000 (0.99 at 3000), but stage 2 brought shape through last (0.93 at step 5000); with
     * tags and a quarter yes/no stayed at 0.64; with tags and a third, yes/no 0.83 at 3000 and 0.97 at ~3800, and
     * stage 2 had shape at 0.97 by step 500. Measured before: trained on "caption, then one more text" the
     * model never answered a yes/no question from its context (always "no"); on documents of one to four random
     * texts (a yes/no question after a text naming the colour in about one document in twenty) one run's model
     * answered from its context and another's said "yes" to every question whatever its context (54.7% on
     * held-out scenes), and stage 2 then got yes/no at chance (VQA 88.8%). The curve's {@code yes_no} is the
     * accuracy on yes/no answers whose document named a colour before the question.
     */
    static int[] document(SceneData data, Scene s, SplittableRandom r) {
        boolean endsInYesNo = r.nextInt(3) == 0;
        int n = endsInYesNo ? 2 + r.nextInt(MAX_TEXTS - 1) : 1 + r.nextInt(MAX_TEXTS);
        List<int[]> parts = new ArrayList<>();
        int length = 1;
        if (r.nextInt(4) == 0) {
            int[] t = data.encode(tags(s, r), -1); // </s> the scene's words in no order, as the visual prompt gives them
            parts.add(t);
            length += t.length;
        }
        for (int i = 0; i < n; i++) {
            int[] t = data.encode(endsInYesNo && i == n - 1 ? yesNo(s, r) : text(s, r), -1); // </s> text
            parts.add(t);
            length += t.length;
        }
        int[] out = new int[length];
        int at = 0;
        for (int[] t : parts) {
            System.arraycopy(t, 0, out, at, t.length);
            at += t.length;
        }
        out[at] = SceneTokenizer.EOS;
        return out;
    }

    /**
     * The scene's attribute words in random order, not a sentence ("circles top three red"): texts that start a
     * quarter of the documents. Stage 2's visual prompt is like them, what is in the image without word order; a
     * model that reads attribute words only through sentence patterns (after a count comes a colour, then a shape)
     * cannot read it. Without them, stage 2 brought shape through last of all (0.57 at step 2000, 0.93 at 5000).
     */
    static String tags(Scene s, SplittableRandom r) {
        List<String> words = new ArrayList<>(List.of(new String[] {"one", "two", "three", "four"}[s.count() - 1],
                s.colour().word(), s.shape().noun(r.nextBoolean() ? 1 : s.count()), s.place().word()));
        for (int i = words.size() - 1; i > 0; i--) {
            java.util.Collections.swap(words, i, r.nextInt(i + 1));
        }
        return String.join(" ", words);
    }

    /** The yes/no question about the scene's colour (asking the true colour or another, half each), answered. */
    static String yesNo(Scene s, SplittableRandom r) {
        return yesNo(s, r, OPT_ANSWER);
    }

    static String yesNo(Scene s, SplittableRandom r, String answerCue) {
        for (Scene.QuestionAnswer qa : s.questions(r, Phrasings.Set.TRAINING_NOISY)) {
            if (qa.kind() == Scene.QuestionAnswer.Kind.YES_NO) {
                return "Question: " + qa.question() + " " + answerCue + " " + qa.answer();
            }
        }
        throw new IllegalStateException("a scene without its yes/no question");
    }

    private static final int YES = SceneTokenizer.word("yes");
    private static final int NO = SceneTokenizer.word("no");

    /**
     * The accuracy of next-token prediction on yes/no answers whose document named a colour in an earlier text:
     * whether the model compares the colour asked with the one it read. NaN when the batch held none.
     *
     * @param logits (B*T, V) flattened
     */
    static double yesNoAccuracy(int[][] ids, int[][] mask, float[] logits, int vocab) {
        int t = ids[0].length;
        int right = 0;
        int total = 0;
        for (int i = 0; i < ids.length; i++) {
            int textStart = 0;
            for (int j = 0; j + 1 < t && mask[i][j + 1] == 1; j++) {
                if (ids[i][j] == SceneTokenizer.EOS) {
                    textStart = j;
                }
                int y = ids[i][j + 1];
                if (y != YES && y != NO || !namesColour(ids[i], textStart)) {
                    continue;
                }
                right += Losses.argmax(logits, i * t + j, vocab) == y ? 1 : 0;
                total++;
            }
        }
        return total == 0 ? Double.NaN : (double) right / total;
    }

    private static boolean namesColour(int[] row, int to) {
        for (int w : ATTRIBUTE_WORDS[1]) {
            if (contains(row, 0, to, w)) {
                return true;
            }
        }
        return false;
    }

    static final String[] COPY_KINDS = {"count", "colour", "shape", "place"};

    /**
     * The token ids of each kind of attribute ({@link #COPY_KINDS}), as the scene tokenizer numbers them: each word
     * after a space, and at a text's start where it is one token there too ("three red crosses").
     */
    static int[][] attributeWords() {
        List<List<String>> words = List.of(List.of("one", "two", "three", "four"),
                java.util.Arrays.stream(Scene.Colour.values()).map(Scene.Colour::word).toList(),
                java.util.Arrays.stream(Scene.Shape.values()).flatMap(x -> java.util.stream.Stream.of(x.noun(1), x.noun(2))).toList(),
                java.util.Arrays.stream(Scene.Place.values()).map(Scene.Place::word).toList());
        int[][] out = new int[words.size()][];
        for (int k = 0; k < out.length; k++) {
            out[k] = words.get(k).stream().flatMapToInt(w -> {
                Integer first = SceneTokenizer.bpe().word(w, false);
                return first == null ? java.util.stream.IntStream.of(SceneTokenizer.word(w))
                        : java.util.stream.IntStream.of(SceneTokenizer.word(w), first);
            }).toArray();
        }
        return out;
    }

    private static final int[][] ATTRIBUTE_WORDS = attributeWords();

    /**
     * How well the model reads its context, per kind of attribute: the accuracy of next-token prediction on the
     * attribute words that an earlier text of the same document already said (a word that can be copied), other than
     * the first word of a text. Stage 2
     * can only carry an attribute through the frozen model if the model has learnt to copy it.
     *
     * @param logits (B*T, V) flattened
     * @return per kind, the fraction predicted right (NaN when the batch held none)
     */
    static double[] contextAccuracy(int[][] ids, int[][] mask, float[] logits, int vocab) {
        int b = ids.length;
        int t = ids[0].length;
        int[] right = new int[ATTRIBUTE_WORDS.length];
        int[] total = new int[ATTRIBUTE_WORDS.length];
        for (int i = 0; i < b; i++) {
            int textStart = 0;
            for (int j = 0; j + 1 < t && mask[i][j + 1] == 1; j++) {
                if (ids[i][j] == SceneTokenizer.EOS) {
                    textStart = j;
                }
                int y = ids[i][j + 1];
                int kind = kindOf(y);
                // the first word of a text is left out: which kind of text comes next is not in the context
                if (kind < 0 || ids[i][j] == SceneTokenizer.EOS || !contains(ids[i], 0, textStart, y)) {
                    continue;
                }
                right[kind] += Losses.argmax(logits, i * t + j, vocab) == y ? 1 : 0;
                total[kind]++;
            }
        }
        double[] out = new double[right.length];
        for (int k = 0; k < out.length; k++) {
            out[k] = total[k] == 0 ? Double.NaN : (double) right[k] / total[k];
        }
        return out;
    }

    /** The kind ({@link #COPY_KINDS} index) of an attribute word, or -1. */
    static int kindOf(int token) {
        for (int k = 0; k < ATTRIBUTE_WORDS.length; k++) {
            for (int w : ATTRIBUTE_WORDS[k]) {
                if (w == token) {
                    return k;
                }
            }
        }
        return -1;
    }

    private static boolean contains(int[] row, int from, int to, int token) {
        for (int j = from; j < to; j++) {
            if (row[j] == token) {
                return true;
            }
        }
        return false;
    }

    static TrainLoop.Step step(SceneModel model, SceneData data, int batch) {
        return (scope, step) -> {
            SplittableRandom r = new SplittableRandom(step * 104729L + 3);
            List<int[]> rows = new ArrayList<>();
            for (Scene s : data.batch(step, batch)) {
                rows.add(document(data, s, r));
            }
            int[][] ids = SceneData.pad(rows);
            int[][] mask = SceneData.mask(ids);
            int b = ids.length;
            int t = ids[0].length;
            int[] flat = new int[b * t];
            for (int i = 0; i < b; i++) {
                System.arraycopy(ids[i], 0, flat, i * t, t);
            }
            NDArray x = model.languageModel.embedTokens().lookup(scope, flat).reshape(b, t, model.spec.tHidden()); // (B, T, H)
            NDArray logits = model.languageModel.logitsOfSequence(x, mask); // (B*T, V)
            int[] labels = new int[b * t];
            for (int i = 0; i < b; i++) {
                for (int j = 0; j < t; j++) {
                    labels[i * t + j] = j + 1 < t && mask[i][j + 1] == 1 ? ids[i][j + 1] : -1; // position j predicts token j+1
                }
            }
            NDArray loss = Losses.crossEntropy(logits, Losses.oneHot(labels, model.spec.vocab()));
            Map<String, NDArray> metrics = new java.util.LinkedHashMap<>();
            float[] v = logits.toFloatArray(); // (B*T*V), once for every metric
            metrics.put("token_acc", scope.create((float) Losses.accuracy(v, labels)));
            double[] copy = contextAccuracy(ids, mask, v, model.spec.vocab());
            for (int k = 0; k < COPY_KINDS.length; k++) {
                if (!Double.isNaN(copy[k])) { // none in this batch
                    metrics.put("copy_" + COPY_KINDS[k], scope.create((float) copy[k]));
                }
            }
            double yesNo = yesNoAccuracy(ids, mask, v, model.spec.vocab());
            if (!Double.isNaN(yesNo)) {
                metrics.put("yes_no", scope.create((float) yesNo));
            }
            return new TrainLoop.Losses(loss, metrics);
        };
    }
}
