package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * The "off-the-shelf" language model: the OPT-style decoder trained from scratch on the scenes' text alone
 * (captions, "a photo of" captions, and question/answer pairs in BLIP-2's VQA template, alone or after the scene's
 * caption), next-token prediction, then frozen for BLIP-2.
 */
final class LanguageModelPretraining {
    private LanguageModelPretraining() {}

    static final Predicate<String> PARAMETERS = n -> n.startsWith("language_model.");

    /** A text about a scene in one of the three forms stage 2 uses, drawn by {@code r}. */
    static String text(Scene s, SplittableRandom r) {
        int kind = r.nextInt(4); // a caption half the time, a question and its answer the other half
        if (kind == 0) {
            return s.caption();
        }
        if (kind == 1) {
            return "a photo of " + s.caption();
        }
        List<Scene.QuestionAnswer> qs = s.questions(r);
        Scene.QuestionAnswer qa = qs.get(r.nextInt(qs.size()));
        return "Question: " + qa.question() + " Answer: " + qa.answer();
    }

    /**
     * A document about one scene, as token ids: a third of the time one text alone, else the scene's caption
     * first and then another text about the same scene ({@code </s> caption </s> text </s>}). The second kind is
     * what teaches the model to use its context: the answer to a question, or a caption said again, can be read
     * from what came before, as a large language model reads a document. Stage 2 puts the visual prompt where
     * that first caption was.
     */
    static int[] document(SceneData data, Scene s, SplittableRandom r) {
        int[] text = data.encode(text(s, r), SceneTokenizer.EOS);
        if (r.nextInt(3) == 0) {
            return text;
        }
        int[] context = data.encode(s.caption(), -1); // </s> caption
        int[] out = java.util.Arrays.copyOf(context, context.length + text.length);
        System.arraycopy(text, 0, out, context.length, text.length);
        return out;
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
            return new TrainLoop.Losses(loss, Map.of("token_acc", scope.create((float) Losses.accuracy(logits, labels))));
        };
    }
}
