package io.blip2stream.train;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.Blip2Retrieval;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.train.scenes.Phrasings;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneRenderer;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Evaluation on held-out scenes through the serving code ({@link Blip2Model} on the exported checkpoints): caption
 * exact match and VQA accuracy from greedy generation; image-to-text and text-to-image recall@1 from ITC, and
 * after re-ranking ITC's top {@value #RERANK} by ITM, as BLIP-2 retrieves.
 */
public final class SceneEvaluation {
    static final int RERANK = 5;
    static final int BATCH = 32;

    /** What one model scored. {@code examples}: the first held-out scenes' true and generated captions. */
    /**
     * @param vqaAccuracy         over the questions in the training phrasings ({@link Phrasings.Set#TRAINING}), one of
     *                            each kind a scene
     * @param vqaHeldOutPhrasings over the same scenes' questions in the phrasings never trained on
     *                            ({@link Phrasings.Set#HELD_OUT})
     * @param vqaCanonical        over the canonical wording, one per kind ({@link Phrasings.Set#CANONICAL})
     */
    public record Report(String name, int scenes, double captionExactMatch, double vqaAccuracy,
                         Map<String, Double> vqaByKind, Double itcImageToText, Double itcTextToImage,
                         Double itmImageToText, Double itmTextToImage, List<String[]> examples, double vqaHeldOutPhrasings,
                         Map<String, Double> vqaHeldOutByKind, double vqaCanonical) {}

    private SceneEvaluation() {}

    /** The held-out scenes 0..n-1. */
    static List<Scene> heldOut(int n) {
        List<Scene> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(SceneGenerator.sample(SceneGenerator.Split.HELDOUT, i));
        }
        return out;
    }

    /**
     * @param generation a generation checkpoint folder, or null to skip captions and VQA (reported as NaN)
     * @param retrieval  a retrieval checkpoint folder, or null to skip retrieval
     */
    public static Report run(String name, Path generation, Path retrieval, Engines.Kind engine, int n, PrintStream progress)
            throws IOException {
        return run(name, generation, retrieval, engine, "float32", n, progress);
    }

    /** @param dtype the precision the models' weights are kept in (float32, bfloat16, int8, auto) */
    public static Report run(String name, Path generation, Path retrieval, Engines.Kind engine, String dtype, int n,
                             PrintStream progress) throws IOException {
        return run(name, generation, retrieval, engine, dtype, n, true, progress);
    }

    /** Captions and retrieval alone (VQA reported as NaN): for models trained on captions alone, as CapFilt's. */
    static Report captionsAndRetrieval(String name, Path generation, Path retrieval, Engines.Kind engine, int n,
                                       PrintStream progress) throws IOException {
        return run(name, generation, retrieval, engine, "float32", n, false, progress);
    }

    private static Report run(String name, Path generation, Path retrieval, Engines.Kind engine, String dtype, int n,
                              boolean withVqa, PrintStream progress) throws IOException {
        List<Scene> scenes = heldOut(n);
        try (NDManager manager = Engines.newManager(engine)) {
            double caption = Double.NaN;
            double vqa = Double.NaN;
            double heldOut = Double.NaN;
            double canonical = Double.NaN;
            Map<String, Double> byKind = new LinkedHashMap<>();
            Map<String, Double> heldOutByKind = new LinkedHashMap<>();
            List<String[]> examples = new ArrayList<>();
            if (generation != null) try (Blip2Model model = Blip2Model.load(generation, manager, dtype)) {
                int size = model.processor().width();
                List<float[]> prompts = new ArrayList<>();
                for (int from = 0; from < n; from += BATCH) {
                    List<float[]> px = new ArrayList<>();
                    for (Scene s : scenes.subList(from, Math.min(n, from + BATCH))) {
                        px.add(model.processor().preprocess(SceneRenderer.render(s, size)));
                    }
                    Blip2Model.ImageFeatures f = model.encodeImages(px, false);
                    for (int i = 0; i < px.size(); i++) {
                        prompts.add(model.visualPrompt(f, i));
                    }
                }
                List<GenerationRequest> captionRequests = new ArrayList<>();
                List<String> captionTruth = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    captionRequests.add(new GenerationRequest(prompts.get(i), null));
                    captionTruth.add(scenes.get(i).caption());
                }
                List<String> captions = generate(model, captionRequests, 12);
                int right = 0;
                for (int i = 0; i < n; i++) {
                    right += captions.get(i).equals(captionTruth.get(i)) ? 1 : 0;
                    if (i < 8) {
                        examples.add(new String[] {captionTruth.get(i), captions.get(i)});
                    }
                }
                caption = (double) right / n;
                progress.printf(java.util.Locale.ROOT, "%s: caption exact match %.1f%% (%d scenes)%n", name, 100 * caption, n);
                List<String> misses = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    if (!captions.get(i).equals(captionTruth.get(i))) {
                        misses.add(captionTruth.get(i) + " -> " + captions.get(i));
                    }
                }
                printMisses(progress, name, "captions", misses);
                if (withVqa) {
                    vqa = vqa(model, scenes, prompts, Phrasings.Set.TRAINING, byKind, name, progress);
                    progress.printf(java.util.Locale.ROOT, "%s: VQA accuracy %.1f%% (%d questions, training phrasings)%n", name, 100 * vqa, 5 * n);
                    heldOut = vqa(model, scenes, prompts, Phrasings.Set.HELD_OUT, heldOutByKind, name, progress);
                    progress.printf(java.util.Locale.ROOT, "%s: VQA accuracy %.1f%% (%d questions, phrasings never trained on)%n", name,
                            100 * heldOut, 5 * n);
                    canonical = vqa(model, scenes, prompts, Phrasings.Set.CANONICAL, new LinkedHashMap<>(), name, null);
                }
            }
            Double[] r = {null, null, null, null};
            if (retrieval != null) {
                r = retrieval(retrieval, manager, dtype, scenes);
                progress.printf(java.util.Locale.ROOT, "%s: recall@1 ITC i2t %.1f%% t2i %.1f%%, ITM re-ranked i2t %.1f%% t2i %.1f%%%n",
                        name, 100 * r[0], 100 * r[1], 100 * r[2], 100 * r[3]);
            }
            return new Report(name, n, caption, vqa, byKind, r[0], r[1], r[2], r[3], examples, heldOut, heldOutByKind, canonical);
        }
    }

    /**
     * VQA accuracy on one question of each kind per scene, worded by {@code set} (the wording drawn by the scene's
     * index, so every model is asked the same questions); {@code byKind} gets the accuracy of each kind.
     */
    private static double vqa(Blip2Model model, List<Scene> scenes, List<float[]> prompts, Phrasings.Set set,
                              Map<String, Double> byKind, String name, PrintStream progress) {
        List<GenerationRequest> requests = new ArrayList<>();
        List<String[]> truth = new ArrayList<>(); // kind, answer, question, caption
        for (int i = 0; i < scenes.size(); i++) {
            for (Scene.QuestionAnswer qa : scenes.get(i).questions(new SplittableRandom(i), set)) {
                requests.add(new GenerationRequest(prompts.get(i), model.generation().vqaPrompt(qa.question())));
                truth.add(new String[] {qa.kind().name().toLowerCase(java.util.Locale.ROOT), qa.answer(), qa.question(),
                        scenes.get(i).caption()});
            }
        }
        List<String> answers = generate(model, requests, 4);
        Map<String, int[]> counts = new LinkedHashMap<>();
        List<String> misses = new ArrayList<>();
        int good = 0;
        for (int i = 0; i < answers.size(); i++) {
            boolean ok = answers.get(i).equals(truth.get(i)[1]);
            if (!ok) {
                misses.add(truth.get(i)[3] + ": " + truth.get(i)[2] + " " + truth.get(i)[1] + " -> " + answers.get(i));
            }
            good += ok ? 1 : 0;
            int[] c = counts.computeIfAbsent(truth.get(i)[0], k -> new int[2]);
            c[0] += ok ? 1 : 0;
            c[1]++;
        }
        counts.forEach((k, c) -> byKind.put(k, (double) c[0] / c[1]));
        if (progress != null) {
            printMisses(progress, name, "answers, " + set.name().toLowerCase(java.util.Locale.ROOT).replace('_', ' ') + " phrasings", misses);
        }
        return (double) good / answers.size();
    }

    /** What a model got wrong, the first {@value #MISSES_SHOWN}: where its errors are is what its accuracy hides. */
    private static void printMisses(PrintStream progress, String name, String what, List<String> misses) {
        if (misses.isEmpty()) {
            return;
        }
        progress.printf(java.util.Locale.ROOT, "%s: %d %s wrong, the first %d: %s%n", name, misses.size(), what,
                Math.min(MISSES_SHOWN, misses.size()), String.join("; ", misses.subList(0, Math.min(MISSES_SHOWN, misses.size()))));
    }

    static final int MISSES_SHOWN = 12;

    private static List<String> generate(Blip2Model model, List<GenerationRequest> requests, int maxNew) {
        List<String> out = new ArrayList<>();
        GenerationParams p = GenerationParams.greedy(maxNew);
        for (int from = 0; from < requests.size(); from += BATCH) {
            for (GenerationResult g : model.generation().generate(requests.subList(from, Math.min(requests.size(), from + BATCH)), p)) {
                out.add(g.text().strip());
            }
        }
        return out;
    }

    /** Recall@1 image-to-text and text-to-image, by ITC and by ITM over ITC's top candidates. */
    private static Double[] retrieval(Path dir, NDManager manager, String dtype, List<Scene> scenes) throws IOException {
        int n = scenes.size();
        try (Blip2Model model = Blip2Model.load(dir, manager, dtype)) {
            int size = model.processor().width();
            int q = model.numQueryTokens();
            int p = model.retrieval().embeddingSize();
            List<float[]> pixels = new ArrayList<>();
            float[] imageEmbeds = new float[n * q * p]; // (N, Q, P)
            for (int from = 0; from < n; from += BATCH) {
                List<float[]> px = new ArrayList<>();
                for (Scene s : scenes.subList(from, Math.min(n, from + BATCH))) {
                    px.add(model.processor().preprocess(SceneRenderer.render(s, size)));
                }
                pixels.addAll(px);
                float[] e = model.encodeImages(px, false).imageEmbeds();
                System.arraycopy(e, 0, imageEmbeds, from * q * p, e.length);
            }
            List<String> captions = scenes.stream().map(Scene::caption).toList();
            float[] textEmbeds = new float[n * p]; // (N, P)
            for (int from = 0; from < n; from += BATCH) {
                float[] e = model.retrieval().embedTexts(captions.subList(from, Math.min(n, from + BATCH)));
                System.arraycopy(e, 0, textEmbeds, from * p, e.length);
            }
            double[][] sim = new double[n][n]; // image i, text j: best cosine over queries
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    double best = Double.NEGATIVE_INFINITY;
                    for (int k = 0; k < q; k++) {
                        double dot = 0;
                        for (int d = 0; d < p; d++) {
                            dot += imageEmbeds[(i * q + k) * p + d] * textEmbeds[j * p + d];
                        }
                        best = Math.max(best, dot);
                    }
                    sim[i][j] = best;
                }
            }
            int itcI2t = 0;
            int itcT2i = 0;
            int itmI2t = 0;
            int itmT2i = 0;
            for (int i = 0; i < n; i++) {
                final int row = i;
                int[] texts = topK(n, j -> sim[row][j]);
                itcI2t += captions.get(texts[0]).equals(captions.get(i)) ? 1 : 0;
                List<String> candidates = new ArrayList<>();
                for (int j : texts) {
                    candidates.add(captions.get(j));
                }
                List<Blip2Retrieval.MatchResult> m = model.retrieval().match(pixels.get(i), candidates);
                int best = 0;
                for (int k = 1; k < m.size(); k++) {
                    best = m.get(k).itmProbability() > m.get(best).itmProbability() ? k : best;
                }
                itmI2t += candidates.get(best).equals(captions.get(i)) ? 1 : 0;

                int[] images = topK(n, k -> sim[k][row]);
                itcT2i += captions.get(images[0]).equals(captions.get(i)) ? 1 : 0;
                double bestP = -1;
                int bestImage = images[0];
                for (int k : images) {
                    double prob = model.retrieval().match(pixels.get(k), List.of(captions.get(i))).get(0).itmProbability();
                    if (prob > bestP) {
                        bestP = prob;
                        bestImage = k;
                    }
                }
                itmT2i += captions.get(bestImage).equals(captions.get(i)) ? 1 : 0;
            }
            return new Double[] {(double) itcI2t / n, (double) itcT2i / n, (double) itmI2t / n, (double) itmT2i / n};
        }
    }

    private static int[] topK(int n, java.util.function.IntToDoubleFunction score) {
        Integer[] idx = new Integer[n];
        for (int i = 0; i < n; i++) {
            idx[i] = i;
        }
        java.util.Arrays.sort(idx, (a, b) -> Double.compare(score.applyAsDouble(b), score.applyAsDouble(a)));
        int[] out = new int[Math.min(RERANK, n)];
        for (int i = 0; i < out.length; i++) {
            out[i] = idx[i];
        }
        return out;
    }
}
