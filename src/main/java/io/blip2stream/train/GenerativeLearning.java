package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import io.blip2stream.train.scenes.Phrasings;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * BLIP-2's second stage, vision-to-language generative learning with the language model frozen: the Q-Former's
 * query outputs, through a fully connected projection into the LLM's embedding space, are prepended to the text as
 * a soft visual prompt, and the language-modelling loss on the text after the prompt trains the queries, the
 * Q-Former and the projection. Texts: the caption after {@code </s>} alone, after "a photo of", and the answer
 * after BLIP-2's "Question: {q} Answer:" (OPT's template).
 *
 * <p>Dimensions: B batch, Q queries, T text, D Q-Former hidden, H language model hidden, V vocabulary.
 */
final class GenerativeLearning {
    private GenerativeLearning() {}

    /** The query path of the Q-Former, the queries and the projection (the text feed-forward is not used here). */
    static final Predicate<String> PARAMETERS = n -> n.equals("query_tokens") || n.startsWith("language_projection.")
            || (n.startsWith("qformer.") && !n.matches("qformer\\.encoder\\.layer\\.\\d+\\.(intermediate|output)\\..*"));

    /** A text split where the loss starts: {@code prompt} tokens (with the leading </s>), then the target and </s>. */
    record Example(int[] ids, int promptLength) {}

    /** What the language model reads after the visual prompt, and what it is to write. */
    record Text(String prompt, String target) {}

    /**
     * A caption half the time, from nothing or after "a photo of", else a question in BLIP-2's template with the
     * model family's cue ({@link LanguageModelPretraining#OPT_ANSWER}, {@link LanguageModelPretraining#T5_ANSWER})
     * and its answer. On a corpus of captions alone ({@link SceneData#hasQuestions()} false: CapFilt's, as the
     * paper's pretraining data) always the caption, from nothing or after "a photo of".
     */
    static Text text(SceneData data, Scene s, SplittableRandom r, String answerCue) {
        int kind = r.nextInt(data.hasQuestions() ? 4 : 2);
        if (kind == 0) {
            return new Text("", data.caption(s));
        }
        if (kind == 1) {
            return new Text("a photo of", data.caption(s));
        }
        List<Scene.QuestionAnswer> qs = s.questions(r, Phrasings.Set.TRAINING_NOISY);
        Scene.QuestionAnswer qa = qs.get(r.nextInt(qs.size()));
        return new Text("Question: " + qa.question() + " " + answerCue, qa.answer());
    }

    static Example example(SceneData data, Scene s, SplittableRandom r) {
        Text x = text(data, s, r, LanguageModelPretraining.OPT_ANSWER);
        int p = data.encode(x.prompt(), -1).length;
        return new Example(data.encode((x.prompt() + " " + x.target()).strip(), SceneTokenizer.EOS), p);
    }

    /** What the curve reports the accuracy of: the attribute words, and the answers to yes/no questions. */
    static final String[] KINDS = {"count", "colour", "shape", "place", "yes_no"};

    /**
     * Next-token accuracy on target tokens of each of {@link #KINDS}: each attribute reaches the frozen language
     * model through the visual prompt at its own time, which the overall token accuracy hides.
     *
     * @param logits (N, V) flattened; {@code labels} (N), -1 where no loss
     * @return per kind, the fraction right (NaN when the batch held none)
     */
    static double[] accuracyByKind(float[] logits, int[] labels, int vocab) {
        int yes = SceneTokenizer.word("yes");
        int no = SceneTokenizer.word("no");
        int[] right = new int[KINDS.length];
        int[] total = new int[KINDS.length];
        for (int i = 0; i < labels.length; i++) {
            int y = labels[i];
            if (y < 0) {
                continue;
            }
            int kind = y == yes || y == no ? KINDS.length - 1 : LanguageModelPretraining.kindOf(y);
            if (kind < 0) {
                continue;
            }
            right[kind] += Losses.argmax(logits, i, vocab) == y ? 1 : 0;
            total[kind]++;
        }
        double[] out = new double[KINDS.length];
        for (int k = 0; k < out.length; k++) {
            out[k] = total[k] == 0 ? Double.NaN : (double) right[k] / total[k];
        }
        return out;
    }

    static TrainLoop.Step step(SceneModel model, SceneData data, int batch) {
        return (scope, step) -> {
            SplittableRandom r = new SplittableRandom(step * 32452843L + 7);
            List<Scene> scenes = data.batch(step, batch);
            int b = scenes.size();
            int q = model.spec.queries();
            NDArray soft = softPrompt(model, data, scope, scenes, r);                                   // (B, Q, H)
            List<Example> examples = new ArrayList<>();
            List<int[]> rows = new ArrayList<>();
            for (Scene s : scenes) {
                Example e = example(data, s, r);
                examples.add(e);
                rows.add(e.ids());
            }
            int[][] ids = SceneData.pad(rows);
            int[][] textMask = SceneData.mask(ids);
            int t = ids[0].length;
            int[] flat = new int[b * t];
            for (int i = 0; i < b; i++) {
                System.arraycopy(ids[i], 0, flat, i * t, t);
            }
            NDArray words = model.languageModel.embedTokens().lookup(scope, flat).reshape(b, t, model.spec.tHidden()); // (B, T, H)
            NDArray x = NDArrays.concat(new NDList(soft, words), 1);                                     // (B, Q+T, H)
            int[][] mask = afterQueries(textMask, q);
            int[] labels = new int[b * (q + t)];
            java.util.Arrays.fill(labels, -1);
            for (int i = 0; i < b; i++) {
                int len = examples.get(i).ids().length;
                for (int j = examples.get(i).promptLength(); j < len; j++) {
                    labels[i * (q + t) + q + j - 1] = ids[i][j]; // the position before token j predicts it
                }
            }
            NDArray logits = model.languageModel.logitsOfSequence(x, mask);                              // (B*(Q+T), V)
            NDArray loss = Losses.crossEntropy(logits, Losses.oneHot(labels, model.spec.vocab()));
            return new TrainLoop.Losses(loss, metrics(scope, logits.toFloatArray(), labels, model.spec.vocab()));
        };
    }

    /**
     * The second stage with an encoder-decoder language model (FlanT5's way, the paper's prefix language modelling):
     * the visual prompt and the prefix (the prompt, "a photo of" or "Question: {q} Short answer:", then
     * {@code </s>}) go into the frozen encoder, and the decoder, from its start token, is trained to write the
     * suffix (the caption or the answer, then {@code </s>}). The loss trains the queries, the Q-Former and the
     * projection, as with OPT.
     */
    static TrainLoop.Step stepEncoderDecoder(SceneModel model, SceneData data, int batch) {
        return (scope, step) -> {
            SplittableRandom r = new SplittableRandom(step * 32452843L + 7);
            List<Scene> scenes = data.batch(step, batch);
            int b = scenes.size();
            int q = model.spec.queries();
            NDArray soft = softPrompt(model, data, scope, scenes, r);                                   // (B, Q, H)
            List<int[]> prompts = new ArrayList<>();
            List<int[]> targets = new ArrayList<>();
            for (Scene s : scenes) {
                Text x = text(data, s, r, LanguageModelPretraining.T5_ANSWER);
                prompts.add(PrefixLanguageModeling.encoderText(data, x.prompt()));
                targets.add(PrefixLanguageModeling.target(data, x.target()));
            }
            int[][] ids = SceneData.pad(prompts);
            int[][] textMask = SceneData.mask(ids);
            int l = ids[0].length;
            NDArray x = NDArrays.concat(new NDList(soft, PrefixLanguageModeling.embed(model, scope, ids)), 1); // (B, Q+L, H)
            int[][] mask = afterQueries(textMask, q);
            PrefixLanguageModeling.DecoderBatch dec = PrefixLanguageModeling.DecoderBatch.of(targets);
            NDArray logits = model.t5.logitsOfSequence(x, mask, dec.inputs(), dec.mask());              // (B*T, V)
            NDArray loss = Losses.crossEntropy(logits, Losses.oneHot(dec.labels(), model.spec.vocab()));
            return new TrainLoop.Losses(loss, metrics(scope, logits.toFloatArray(), dec.labels(), model.spec.vocab()));
        };
    }

    /**
     * The soft visual prompt [B, Q, H] of the scenes: the frozen ViT on their (augmented) images, the queries through
     * the Q-Former, projected into the language model's embedding space.
     */
    static NDArray softPrompt(SceneModel model, SceneData data, ai.djl.ndarray.NDManager scope, List<Scene> scenes,
                              SplittableRandom r) {
        NDArray image = model.vision.forward(data.pixels(scope, scenes, true, r));                          // (B, S, Dv), frozen
        NDArray queryOut = model.qformer.forward(RepresentationLearning.queries(model, scope, scenes.size()), image); // (B, Q, D)
        return model.languageProjection.forward(queryOut);                                                  // (B, Q, H)
    }

    /** The attention mask of the visual prompt's {@code q} positions (all real) followed by the text's [B][T]. */
    static int[][] afterQueries(int[][] textMask, int q) {
        int[][] mask = new int[textMask.length][];
        for (int i = 0; i < textMask.length; i++) {
            mask[i] = new int[q + textMask[i].length];
            java.util.Arrays.fill(mask[i], 0, q, 1);
            System.arraycopy(textMask[i], 0, mask[i], q, textMask[i].length);
        }
        return mask;
    }

    /** Token accuracy and {@link #accuracyByKind}, for the curve. */
    private static Map<String, NDArray> metrics(ai.djl.ndarray.NDManager scope, float[] v, int[] labels, int vocab) {
        Map<String, NDArray> metrics = new java.util.LinkedHashMap<>();
        metrics.put("token_acc", scope.create((float) Losses.accuracy(v, labels)));
        double[] byKind = accuracyByKind(v, labels, vocab);
        for (int k = 0; k < byKind.length; k++) {
            if (!Double.isNaN(byKind[k])) {
                metrics.put("acc_" + KINDS[k], scope.create((float) byKind[k]));
            }
        }
        return metrics;
    }
}
