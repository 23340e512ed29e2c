package io.blip2stream.train;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.text.TextTokenizer;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * The whole recipe, stage after stage, each resumable: the two "off-the-shelf" unimodal models first (the ViT on
 * scene attributes, the language model on scene text), then BLIP-2's two stages with both frozen; then the
 * encoder-decoder branch (a T5 pretrained on scene text with a prefix-LM objective, and stage 2 from stage 1's
 * Q-Former into it); and, when asked, the paper's ablations ({@link Ablations}). Each stage leaves a training state in
 * {@code out/<stage>/} and a {@code done} marker; a run that is stopped resumes from the last checkpoint of the
 * stage it was in. Finally the checkpoints are exported in the Hugging Face layout and evaluated on held-out scenes.
 */
public final class Trainer {
    public static final String VISION = "vision";
    public static final String LANGUAGE_MODEL = "language-model";
    public static final String STAGE1 = "stage1";
    public static final String STAGE2 = "stage2";
    /** BLIP-2's starting point: the frozen encoders (the ViT without its last layer) and a fresh Q-Former. */
    public static final String BLIP2_INIT = "stage1-init";
    public static final String ABLATION = Ablations.STAGE2_ONLY;
    public static final String T5_INIT = "init-t5";
    public static final String LANGUAGE_MODEL_T5 = "language-model-t5";
    public static final String T5_STAGE2_INIT = "stage2-t5-init";
    public static final String STAGE2_T5 = "stage2-t5";

    /** What a run produced: the curves per stage, where the models went, and the evaluation. */
    public record Result(List<TrainLoop.Curve> curves, Path generation, Path retrieval, Path generationT5, Path ablation,
                         List<SceneEvaluation.Report> reports, double seconds) {}

    private final Recipe recipe;
    private final Path out;
    private final PrintStream progress;

    public Trainer(Recipe recipe, Path out, PrintStream progress) {
        this.recipe = recipe;
        this.out = out;
        this.progress = progress;
    }

    public Result run(boolean ablation, Path exportDir) throws IOException {
        return run(ablation, false, exportDir);
    }

    /**
     * @param ablation whether to train and evaluate the paper's ablations ({@link Ablations})
     * @param capfilt  whether to run CapFilt's comparison ({@link CapFilt}): pretraining on noisy web captions against
     *                 pretraining on bootstrapped ones
     */
    public Result run(boolean ablation, boolean capfilt, Path exportDir) throws IOException {
        long t0 = System.nanoTime();
        Path init = out.resolve("init");
        if (!Files.exists(init.resolve("model.safetensors"))) {
            recipe.spec().writeInitialState(init, recipe.seed());
        }
        List<TrainLoop.Curve> curves = new ArrayList<>();
        CapFilt.Result capfiltResult = null;
        try (NDManager manager = Engines.newManager(Engines.Kind.PYTORCH);
             TextTokenizer tokenizer = TextTokenizer.load(init)) {
            SceneData data = new SceneData(recipe.trainScenes(), recipe.seed(), recipe.spec().imageSize(),
                    PreprocessorConfig.load(init, recipe.spec().imageSize()), tokenizer);
            curves.add(stage(VISION, init, recipe.vision(), VisionPretraining.PARAMETERS, manager,
                    m -> VisionPretraining.step(m, data, recipe.vision().batch())));
            curves.add(stage(LANGUAGE_MODEL, out.resolve(VISION), recipe.languageModel(), LanguageModelPretraining.PARAMETERS,
                    manager, m -> LanguageModelPretraining.step(m, data, recipe.languageModel().batch())));
            // the encoder-decoder language model, pretrained alone from its own initialisation
            Path t5Init = out.resolve(T5_INIT);
            if (!Files.exists(t5Init.resolve("model.safetensors"))) {
                recipe.t5Spec().writeInitialState(t5Init, recipe.seed() + 1);
            }
            curves.add(stage(LANGUAGE_MODEL_T5, t5Init, recipe.t5Spec(), recipe.languageModelT5(),
                    PrefixLanguageModeling.PARAMETERS, manager, m -> PrefixLanguageModeling.step(m, data, recipe.languageModelT5().batch())));
            // BLIP-2's model: the frozen ViT without its last layer, the frozen LM, the Q-Former as initialised
            Path blip2Init = out.resolve(BLIP2_INIT);
            if (!Files.exists(blip2Init.resolve("model.safetensors"))) {
                recipe.blip2Spec().writeMergedState(out.resolve(LANGUAGE_MODEL), out.resolve(LANGUAGE_MODEL), blip2Init);
            }
            curves.add(stage(STAGE1, blip2Init, recipe.blip2Spec(), recipe.representation(), RepresentationLearning.PARAMETERS,
                    manager, m -> RepresentationLearning.step(m, data, recipe.representation().batch())));
            curves.add(stage(STAGE2, out.resolve(STAGE1), recipe.blip2Spec(), recipe.generative(), GenerativeLearning.PARAMETERS,
                    manager, m -> GenerativeLearning.step(m, data, recipe.generative().batch())));
            // the encoder-decoder branch: stage 2 from stage 1's ViT and Q-Former into the T5 pretrained alone
            Path t5Stage2Init = out.resolve(T5_STAGE2_INIT);
            if (!Files.exists(t5Stage2Init.resolve("model.safetensors"))) {
                recipe.blip2T5Spec().writeMergedState(out.resolve(STAGE1), out.resolve(LANGUAGE_MODEL_T5), t5Stage2Init);
            }
            curves.add(stage(STAGE2_T5, t5Stage2Init, recipe.blip2T5Spec(), recipe.generativeT5(),
                    GenerativeLearning.PARAMETERS, manager, m -> GenerativeLearning.stepEncoderDecoder(m, data, recipe.generativeT5().batch())));
            if (ablation) {
                Ablations.train(this, recipe, out, data, manager, curves);
            }
            if (capfilt) {
                capfiltResult = CapFilt.run(this, recipe, out, exportDir, data, manager, curves, progress);
            }
        }
        Path generation = exportDir.resolve("blip2-scenes-opt");
        Path retrieval = exportDir.resolve("blip2-scenes-itm");
        Export.generation(recipe.blip2Spec(), out.resolve(STAGE2), generation);
        Export.retrieval(recipe.blip2Spec(), out.resolve(STAGE1), retrieval);
        Path generationT5 = exportDir.resolve("blip2-scenes-t5");
        Export.generation(recipe.blip2T5Spec(), out.resolve(STAGE2_T5), generationT5);
        Ablations.Models ablations = ablation ? Ablations.export(recipe, out, exportDir) : null;
        List<SceneEvaluation.Report> reports = new ArrayList<>();
        if (recipe.evalScenes() > 0) {
            reports.add(SceneEvaluation.run("BLIP-2 (stage 1 + stage 2)", generation, retrieval, Engines.Kind.PYTORCH,
                    recipe.evalScenes(), progress));
            reports.add(SceneEvaluation.run("BLIP-2 with T5 (stage 1 + stage 2)", generationT5, null, Engines.Kind.PYTORCH,
                    recipe.evalScenes(), progress));
            if (ablation) {
                reports.addAll(Ablations.evaluate(ablations, recipe.evalScenes(), progress));
            }
        }
        if (capfiltResult != null) {
            reports.add(capfiltResult.web());
            reports.add(capfiltResult.capfilt());
        }
        Result r = new Result(curves, generation, retrieval, generationT5, ablations == null ? null : ablations.stage2Only(), reports,
                (System.nanoTime() - t0) / 1e9);
        ModelCard.write(generation, ModelCard.examplesHeader(generation) + ModelCard.markdown("blip2-scenes-opt", "Blip2ForConditionalGeneration", recipe.blip2Spec(), recipe, curves, reports, r.seconds()));
        ModelCard.write(generationT5, ModelCard.examplesHeader(generationT5) + ModelCard.markdown("blip2-scenes-t5", "Blip2ForConditionalGeneration", recipe.blip2T5Spec(), recipe, curves, reports, r.seconds()));
        ModelCard.write(retrieval, ModelCard.markdown("blip2-scenes-itm", "Blip2ForImageTextRetrieval", recipe.blip2Spec(), recipe, curves, reports, r.seconds()));
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("recipe", recipe);
        summary.put("seconds", r.seconds());
        summary.put("curves", curves);
        summary.put("evaluation", reports);
        if (capfiltResult != null) {
            CapFilt.Bootstrap b = capfiltResult.bootstrap();
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("webScenes", b.scenes());
            c.put("webCaptionsRight", b.webRight());
            c.put("sampledCaptionsRight", b.sampledRight());
            c.put("keptCaptionsRight", b.keptRight());
            c.put("keptWebText", b.keptWeb());
            c.put("noisyWebCaptionsReplacedByTheTruth", b.noisyFixed());
            c.put("examples", b.examples());
            summary.put("capfilt", c);
        }
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(out.resolve("report.json").toFile(), summary);
        return r;
    }

    interface StepFactory {
        TrainLoop.Step create(SceneModel model);
    }

    private TrainLoop.Curve stage(String name, Path from, Recipe.Stage stage, Predicate<String> params, NDManager manager,
                                  StepFactory factory) throws IOException {
        return stage(name, from, recipe.spec(), stage, params, manager, factory);
    }

    /** Trains one stage of {@code spec}'s model from the state in {@code from} into {@code out/name}, or reads it when done. */
    TrainLoop.Curve stage(String name, Path from, SceneModelSpec spec, Recipe.Stage stage, Predicate<String> params,
                          NDManager manager, StepFactory factory) throws IOException {
        Path dir = out.resolve(name);
        Path curveFile = dir.resolve("curve.json");
        ObjectMapper json = new ObjectMapper();
        if (Files.exists(dir.resolve("done"))) {
            progress.println(name + ": done before, skipped");
            return json.readValue(curveFile.toFile(), TrainLoop.Curve.class);
        }
        Path checkpoint = dir.resolve("checkpoint");
        boolean resume = Files.exists(checkpoint.resolve("progress.json"));
        progress.printf("%s: %d steps at batch %d, learning rate %.1e to %.1e%s%n", name, stage.steps(), stage.batch(),
                stage.peakLr(), stage.minLr(), resume ? " (resuming)" : "");
        try (SceneModel model = SceneModel.load(spec, resume ? checkpoint.resolve("model") : from, manager)) {
            TrainLoop.Curve curve = TrainLoop.run(name, model, model.parameters(params), stage.schedule(), factory.create(model),
                    checkpoint, Math.max(50, stage.steps() / 5), progress);
            model.save(dir);
            json.writeValue(curveFile.toFile(), curve);
        }
        Files.writeString(dir.resolve("done"), "");
        deleteTree(checkpoint);
        return json.readValue(curveFile.toFile(), TrainLoop.Curve.class);
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path f : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(f);
            }
        }
    }
}
