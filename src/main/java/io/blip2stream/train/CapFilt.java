package io.blip2stream.train;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneRenderer;
import io.blip2stream.train.scenes.WebCaptions;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * CapFilt, BLIP's caption bootstrapping, which BLIP-2's pretraining data went through, on the scenes' noisy-web
 * variant ({@link WebCaptions}: half the captions noise), measured as the paper would: pretraining on the web text
 * against pretraining on CapFilt's captions, both evaluated on clean held-out scenes.
 * <ol>
 *   <li>Pretraining on the web corpus ({@link #webScenes}: a fifth of the training scenes with their web captions):
 *   stage 1 (ITC, ITM, ITG) and stage 2 on captions alone (the web says nothing a question could be asked of), from
 *   the recipe's frozen ViT and LM.</li>
 *   <li>The captioner: that stage-2 model fine-tuned on a clean subset ({@link #cleanScenes}: other training scenes,
 *   a twentieth of them, with their true captions), as BLIP fine-tunes on COCO; the filter: that stage-1 model
 *   fine-tuned with ITC and ITM on the same. Both at a tenth of the pretraining learning rate.</li>
 *   <li>For each web scene {@value #SAMPLES} captions by nucleus sampling (top-p {@value #TOP_P}), and the web text:
 *   the eleven ranked by the filter's ITM probability, and one of the top two kept at random ({@link #keep}).</li>
 *   <li>Pretraining again, the same stages and steps, on the kept captions.</li>
 * </ol>
 * Stage 2 here runs half the recipe's steps (captions alone are learnt sooner than captions and questions).
 */
final class CapFilt {
    private CapFilt() {}

    static final int SAMPLES = 10;
    static final double TOP_P = 0.9;
    static final String WEB_STAGE1 = "capfilt-web-stage1";
    static final String WEB_STAGE2 = "capfilt-web-stage2";
    static final String CAPTIONER = "capfilt-captioner";
    static final String FILTER = "capfilt-filter";
    static final String CAPTIONS = "capfilt-captions.json";
    static final String BOOTSTRAPPED_STAGE1 = "capfilt-stage1";
    static final String BOOTSTRAPPED_STAGE2 = "capfilt-stage2";
    static final int SCENES_PER_BATCH = 8;

    /** The web corpus's scenes: a fifth of the training set, from its first scene. */
    static int webScenes(Recipe recipe) {
        return Math.max(1, recipe.trainScenes() / 5);
    }

    /** The clean subset's scenes: a twentieth of the training set, after the web corpus's. */
    static int cleanScenes(Recipe recipe) {
        return Math.max(1, recipe.trainScenes() / 20);
    }

    /**
     * What bootstrapping did to the web corpus. {@code webRight}: the share of web captions that were the scene's
     * true caption; {@code sampledRight}: of the captioner's samples; {@code keptRight}: of the captions kept (the
     * filter's precision); {@code keptWeb}: the share of kept captions that are the web text; {@code noisyFixed}: of
     * the scenes whose web caption was noise, the share whose kept caption is right; {@code examples}: the first
     * scenes' truth, web text and kept caption.
     */
    record Bootstrap(int scenes, double webRight, double sampledRight, double keptRight, double keptWeb,
                     double noisyFixed, List<String[]> examples, Map<Integer, String> kept) {}

    /**
     * One web scene's candidates as {@link #CAPTIONS} holds them: the captioner's {@value #SAMPLES} samples then the
     * web text, the filter's ITM probability of each, and the caption kept.
     */
    record Candidates(int scene, List<String> candidates, double[] itm, String kept) {}

    /** CapFilt's outcome: the bootstrap, and the two pretraining runs evaluated. */
    record Result(Bootstrap bootstrap, SceneEvaluation.Report web, SceneEvaluation.Report capfilt) {}

    /**
     * One of the top two of {@code candidates} by {@code scores} (ties keep the earlier), drawn by {@code random}:
     * duplicates count, so a caption sampled twice and ranked first and second is kept for certain.
     */
    static String keep(List<String> candidates, double[] scores, SplittableRandom random) {
        if (candidates.isEmpty() || candidates.size() != scores.length) {
            throw new IllegalArgumentException(candidates.size() + " candidates, " + scores.length + " scores");
        }
        int first = 0;
        for (int i = 1; i < scores.length; i++) {
            first = scores[i] > scores[first] ? i : first;
        }
        int second = -1;
        for (int i = 0; i < scores.length; i++) {
            if (i != first && (second < 0 || scores[i] > scores[second])) {
                second = i;
            }
        }
        return second < 0 || random.nextBoolean() ? candidates.get(first) : candidates.get(second);
    }

    /** Sample {@code k} of web scene {@code scene}: nucleus sampling with a seed of its own. */
    static GenerationParams sampling(long seed, int scene, int k) {
        return GenerationParams.builder().doSample(true).topK(0).topP(TOP_P).maxNewTokens(12)
                .seed(seed * 1_000_003L + (long) scene * SAMPLES + k).build();
    }

    static Result run(Trainer trainer, Recipe recipe, Path out, Path exportDir, SceneData data, NDManager manager,
                      List<TrainLoop.Curve> curves, PrintStream progress) throws IOException {
        SceneModelSpec spec = recipe.blip2Spec();
        int web = webScenes(recipe);
        List<Scene> webCorpus = new ArrayList<>();
        Map<Long, Integer> index = new HashMap<>(); // by seed: the web scenes' indices
        for (int i = 0; i < web; i++) {
            webCorpus.add(SceneGenerator.sample(SceneGenerator.Split.TRAIN, i));
            index.put(webCorpus.get(i).seed(), i);
        }
        SceneData webData = data.corpus(0, web, s -> WebCaptions.of(s, index.get(s.seed())).text());
        SceneData clean = data.corpus(web, cleanScenes(recipe), Scene::caption);
        Path init = out.resolve(Trainer.BLIP2_INIT); // the frozen ViT (without its last layer) and LM, a fresh Q-Former
        Recipe.Stage stage2 = recipe.generative().scaled(0.5);
        pretrain(trainer, recipe, stage2, init, out, WEB_STAGE1, WEB_STAGE2, webData, manager, curves);
        curves.add(trainer.stage(CAPTIONER, out.resolve(WEB_STAGE2), spec, recipe.generative().fineTuning(1 / 6.0),
                GenerativeLearning.PARAMETERS, manager, m -> GenerativeLearning.step(m, clean, recipe.generative().batch())));
        curves.add(trainer.stage(FILTER, out.resolve(WEB_STAGE1), spec, recipe.representation().fineTuning(0.2),
                RepresentationLearning.PARAMETERS, manager,
                m -> RepresentationLearning.step(m, clean, recipe.representation().batch(), false)));

        Path captioner = exportDir.resolve("capfilt-captioner");
        Path filter = exportDir.resolve("capfilt-filter");
        Export.generation(spec, out.resolve(CAPTIONER), captioner);
        Export.retrieval(spec, out.resolve(FILTER), filter);
        Bootstrap b = bootstrap(captioner, filter, webCorpus, recipe.seed(), out.resolve(CAPTIONS), progress);
        SceneData bootstrapped = data.corpus(0, web, s -> b.kept().get(index.get(s.seed())));
        pretrain(trainer, recipe, stage2, init, out, BOOTSTRAPPED_STAGE1, BOOTSTRAPPED_STAGE2, bootstrapped, manager, curves);

        Map<String, Path[]> models = new LinkedHashMap<>();
        models.put("pretrained on the web text", new Path[] {out.resolve(WEB_STAGE2), out.resolve(WEB_STAGE1)});
        models.put("pretrained on CapFilt's captions", new Path[] {out.resolve(BOOTSTRAPPED_STAGE2), out.resolve(BOOTSTRAPPED_STAGE1)});
        List<SceneEvaluation.Report> reports = new ArrayList<>();
        for (Map.Entry<String, Path[]> e : models.entrySet()) {
            String name = e.getKey().contains("web") ? "capfilt-web" : "capfilt";
            Path gen = exportDir.resolve("blip2-scenes-opt-" + name);
            Path ret = exportDir.resolve("blip2-scenes-itm-" + name);
            Export.generation(spec, e.getValue()[0], gen);
            Export.retrieval(spec, e.getValue()[1], ret);
            reports.add(SceneEvaluation.captionsAndRetrieval("CapFilt: " + e.getKey(), gen, ret, Engines.Kind.PYTORCH,
                    recipe.evalScenes(), progress));
        }
        return new Result(b, reports.get(0), reports.get(1));
    }

    private static void pretrain(Trainer trainer, Recipe recipe, Recipe.Stage stage2, Path init, Path out, String first,
                                 String second, SceneData corpus, NDManager manager, List<TrainLoop.Curve> curves)
            throws IOException {
        SceneModelSpec spec = recipe.blip2Spec();
        curves.add(trainer.stage(first, init, spec, recipe.representation(), RepresentationLearning.PARAMETERS, manager,
                m -> RepresentationLearning.step(m, corpus, recipe.representation().batch())));
        curves.add(trainer.stage(second, out.resolve(first), spec, stage2, GenerativeLearning.PARAMETERS, manager,
                m -> GenerativeLearning.step(m, corpus, stage2.batch())));
    }

    /**
     * Captions the web scenes {@value #SAMPLES} times each with the captioner and keeps one caption per scene by the
     * filter; every scene's {@link Candidates} are written to {@code file} (JSON) and read from it when it is there.
     */
    static Bootstrap bootstrap(Path captioner, Path filter, List<Scene> scenes, long seed, Path file, PrintStream progress)
            throws IOException {
        ObjectMapper json = new ObjectMapper();
        int n = scenes.size();
        Map<Integer, String> kept = new LinkedHashMap<>();
        int sampledRight = 0;
        if (Files.exists(file)) {
            for (Candidates c : json.readValue(file.toFile(), Candidates[].class)) {
                if (c.scene() < 0 || c.scene() >= n || c.kept() == null || c.candidates() == null) {
                    throw new IOException(file + " holds scene " + c.scene() + " of a corpus of " + n
                            + " or no caption for it (delete it to bootstrap again)");
                }
                kept.put(c.scene(), c.kept());
                for (String t : c.candidates().subList(0, Math.min(SAMPLES, c.candidates().size()))) {
                    sampledRight += t.equals(scenes.get(c.scene()).caption()) ? 1 : 0;
                }
            }
        } else {
            List<Candidates> saved = new ArrayList<>();
            long t0 = System.nanoTime();
            SplittableRandom pick = new SplittableRandom(seed * 7 + 1);
            try (NDManager manager = Engines.newManager(Engines.Kind.PYTORCH);
                 Blip2Model cap = Blip2Model.load(captioner, manager, "float32");
                 Blip2Model fil = Blip2Model.load(filter, manager, "float32")) {
                for (int from = 0; from < n; from += SCENES_PER_BATCH) {
                    List<Scene> batch = scenes.subList(from, Math.min(n, from + SCENES_PER_BATCH));
                    List<float[]> px = new ArrayList<>();
                    List<float[]> filterPx = new ArrayList<>();
                    for (Scene s : batch) {
                        px.add(cap.processor().preprocess(SceneRenderer.render(s, cap.processor().width())));
                        filterPx.add(fil.processor().preprocess(SceneRenderer.render(s, fil.processor().width())));
                    }
                    Blip2Model.ImageFeatures f = cap.encodeImages(px, false);
                    List<GenerationRequest> requests = new ArrayList<>();
                    List<GenerationParams> params = new ArrayList<>();
                    for (int i = 0; i < batch.size(); i++) {
                        float[] prompt = cap.visualPrompt(f, i);
                        for (int k = 0; k < SAMPLES; k++) {
                            requests.add(new GenerationRequest(prompt, null));
                            params.add(sampling(seed, from + i, k)); // a seed each: samples of one seed are one sample
                        }
                    }
                    List<GenerationResult> samples = cap.generation().generateEach(requests, params);
                    for (int i = 0; i < batch.size(); i++) {
                        Scene s = batch.get(i);
                        List<String> candidates = new ArrayList<>();
                        for (int k = 0; k < SAMPLES; k++) {
                            String c = samples.get(i * SAMPLES + k).text().strip();
                            candidates.add(c);
                            sampledRight += c.equals(s.caption()) ? 1 : 0;
                        }
                        candidates.add(WebCaptions.of(s, from + i).text());
                        List<String> unique = candidates.stream().distinct().toList();
                        Map<String, Double> probability = new HashMap<>();
                        // a sample may read back longer than the filter's text positions (bytes of a broken
                        // character): cut to them, as BLIP's CapFilt truncates
                        List<int[]> ids = fil.retrieval().encodeTexts(unique).stream()
                                .map(t -> java.util.Arrays.copyOf(t, Math.min(t.length, fil.retrieval().maxTextTokens()))).toList();
                        var m = fil.retrieval().match(filterPx.get(i), unique, ids);
                        for (int k = 0; k < unique.size(); k++) {
                            probability.put(unique.get(k), m.get(k).itmProbability());
                        }
                        double[] scores = candidates.stream().mapToDouble(probability::get).toArray();
                        String k = keep(candidates, scores, pick);
                        kept.put(from + i, k);
                        saved.add(new Candidates(from + i, candidates, scores, k));
                    }
                    if (progress != null && (from / SCENES_PER_BATCH) % 50 == 0) {
                        progress.printf(java.util.Locale.ROOT, "capfilt: %d of %d scenes captioned and filtered, %.0fs%n",
                                from + batch.size(), n, (System.nanoTime() - t0) / 1e9);
                    }
                }
            }
            json.writeValue(file.toFile(), saved);
        }
        int webRight = 0;
        int keptRight = 0;
        int keptWeb = 0;
        int noisy = 0;
        int fixed = 0;
        List<String[]> examples = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Scene s = scenes.get(i);
            WebCaptions.WebCaption w = WebCaptions.of(s, i);
            String k = kept.get(i);
            if (k == null) {
                throw new IOException(file + " has no caption for scene " + i + " (delete it to bootstrap again)");
            }
            boolean right = k.equals(s.caption());
            webRight += w.text().equals(s.caption()) ? 1 : 0;
            keptRight += right ? 1 : 0;
            keptWeb += k.equals(w.text()) ? 1 : 0;
            if (w.noisy()) {
                noisy++;
                fixed += right ? 1 : 0;
            }
            if (i < 12) {
                examples.add(new String[] {s.caption(), w.text(), k});
            }
        }
        Bootstrap b = new Bootstrap(n, (double) webRight / n, (double) sampledRight / (n * SAMPLES),
                (double) keptRight / n, (double) keptWeb / n, noisy == 0 ? Double.NaN : (double) fixed / noisy, examples, kept);
        if (progress != null) {
            progress.printf(java.util.Locale.ROOT, "CapFilt on %d web scenes: web captions right %.1f%%, captioner's samples right %.1f%%, "
                            + "kept captions right (the filter's precision) %.1f%%, kept the web text %.1f%%, noisy web captions replaced by the truth %.1f%%%n",
                    n, 100 * b.webRight(), 100 * b.sampledRight(), 100 * b.keptRight(), 100 * b.keptWeb(), 100 * b.noisyFixed());
        }
        return b;
    }
}
