package io.blip2stream.train;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.T5Config;
import io.blip2stream.model.weights.Blip2WeightTree;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.weights.Weights;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneRenderer;
import io.blip2stream.train.scenes.SceneTokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The recipe end to end on a tiny scene model, a few steps per stage: which parameters each stage trains and which
 * it leaves frozen, the exported checkpoints serving through the inference code, and a stopped stage resuming to
 * the same weights as an uninterrupted one.
 */
class TrainerTest {
    static final SceneModelSpec TINY = new SceneModelSpec(32, 8, 32, 2, 2, 64, 32, 2, 2, 64, 4, 16, 32, 2, 2, 64,
            SceneTokenizer.vocabSize(), 32, SceneModelSpec.LanguageModelKind.OPT);

    @TempDir
    static Path dir;
    static Trainer.Result result;
    static String log;

    static Recipe tiny(int steps) {
        Recipe.Stage s = new Recipe.Stage(steps, 8, 1, 1e-3f, 1e-4f);
        return new Recipe(TINY, 200, 3, s, s, s, s, s, s, 6);
    }

    @BeforeAll
    static void train() throws IOException {
        ByteArrayOutputStream progress = new ByteArrayOutputStream();
        result = new Trainer(tiny(3), dir.resolve("run"), new PrintStream(progress, true)).run(true, true, dir.resolve("models"));
        log = progress.toString();
    }

    static float[] tensor(Path state, String name) throws IOException {
        try (Weights w = Weights.open(state)) {
            FloatBuffer b = w.floats(name, w.shape(name));
            float[] v = new float[b.remaining()];
            b.get(v);
            return v;
        }
    }

    static void assertChanged(Path before, Path after, String name) throws IOException {
        assertFalse(Arrays.equals(tensor(before, name), tensor(after, name)), name + " should have trained");
    }

    static void assertSame(Path before, Path after, String name) throws IOException {
        assertArrayEquals(tensor(before, name), tensor(after, name), name + " should be frozen");
    }

    @Test
    void eachStageTrainsItsOwnPartsAndLeavesTheFrozenOnesAlone() throws IOException {
        Path run = dir.resolve("run");
        Path init = run.resolve("init");
        Path vision = run.resolve(Trainer.VISION);
        Path lm = run.resolve(Trainer.LANGUAGE_MODEL);
        Path s1 = run.resolve(Trainer.STAGE1);
        Path s2 = run.resolve(Trainer.STAGE2);
        String vit = "vision_model.encoder.layers.0.mlp.fc1.weight";
        String opt = "language_model.model.decoder.layers.0.fc1.weight";
        String optEmbed = "language_model.model.decoder.embed_tokens.weight";
        String crossAttention = "qformer.encoder.layer.0.crossattention.attention.key.weight";
        String textFfn = "qformer.encoder.layer.0.intermediate.dense.weight";
        // the unimodal models
        assertChanged(init, vision, vit);
        assertChanged(init, vision, "train.vision_heads.count.weight");
        assertSame(init, vision, opt);
        assertChanged(vision, lm, opt);
        assertChanged(vision, lm, optEmbed); // also through the tied LM head
        assertSame(vision, lm, vit);
        // stage 1: the Q-Former and its heads, with both encoders frozen
        for (String n : List.of("query_tokens", crossAttention, textFfn, "embeddings.word_embeddings.weight",
                "vision_projection.weight", "text_projection.weight", "itm_head.weight",
                "train.itg_head.transform.dense.weight", "train.itc_temperature")) {
            assertChanged(lm, s1, n);
        }
        assertSame(lm, s1, vit);
        assertSame(lm, s1, opt);
        assertSame(lm, s1, "language_projection.weight");
        // stage 2: the queries, the Q-Former's query path and the projection, with the LLM frozen
        for (String n : List.of("query_tokens", crossAttention, "language_projection.weight")) {
            assertChanged(s1, s2, n);
        }
        for (String n : List.of(vit, opt, optEmbed, textFfn, "itm_head.weight")) {
            assertSame(s1, s2, n);
        }
        // the encoder-decoder branch: stage 1's ViT and Q-Former, a fresh T5 pretrained alone, then stage 2 into it
        Path t5Init = run.resolve(Trainer.T5_INIT);
        Path t5Lm = run.resolve(Trainer.LANGUAGE_MODEL_T5);
        Path t5S2Init = run.resolve(Trainer.T5_STAGE2_INIT);
        Path t5S2 = run.resolve(Trainer.STAGE2_T5);
        String t5Ffn = "language_model.encoder.block.0.layer.1.DenseReluDense.wi_1.weight";
        List<String> t5 = List.of(t5Ffn, "language_model.shared.weight", "language_model.lm_head.weight",
                "language_model.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "language_model.decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "language_model.decoder.block.1.layer.1.EncDecAttention.k.weight");
        for (String n : t5) {
            assertChanged(t5Init, t5Lm, n);
        }
        for (String n : List.of(vit, crossAttention, "query_tokens", "language_projection.weight")) {
            assertSame(t5Init, t5Lm, n);
        }
        for (String n : List.of(vit, crossAttention, "query_tokens", textFfn)) { // stage 2 starts from stage 1
            assertSame(s1, t5S2Init, n);
        }
        for (String n : t5) { // and the T5 pretrained alone
            assertSame(t5Lm, t5S2Init, n);
        }
        for (String n : List.of("query_tokens", crossAttention, "language_projection.weight")) {
            assertChanged(t5S2Init, t5S2, n);
        }
        for (String n : t5) {
            assertSame(t5S2Init, t5S2, n);
        }
        assertSame(t5S2Init, t5S2, vit);
        assertTrue(log.contains("stage1 step 3/3 loss"), log);
        assertTrue(log.matches("(?s).*itc \\d.*itm \\d.*itg \\d.*"), "stage 1 reports its three losses: " + log);
        assertTrue(log.contains("left"), "progress shows the time left");
    }

    @Test
    void theExportedCheckpointsServeThroughTheInferenceCodeOnBothEngines() throws IOException {
        assertTrue(Files.exists(result.generation().resolve("config.json")));
        assertTrue(Files.readString(result.generation().resolve("config.json")).contains("Blip2ForConditionalGeneration"));
        assertTrue(Files.readString(result.retrieval().resolve("config.json")).contains("Blip2ForImageTextRetrieval"));
        try (Weights w = Weights.open(result.generation())) {
            assertFalse(w.names().stream().anyMatch(n -> n.startsWith("train.") || n.startsWith("itm_head")),
                    "training-only and retrieval tensors stay out of the generation checkpoint");
        }
        byte[] png = SceneRenderer.png(SceneGenerator.sample(SceneGenerator.Split.HELDOUT, 0), 32);
        String[] texts = new String[2];
        for (Engines.Kind engine : Engines.Kind.values()) {
            try (NDManager m = Engines.newManager(engine); Blip2Model model = Blip2Model.load(result.generation(), m);
                 Blip2Model itm = Blip2Model.load(result.retrieval(), m)) {
                float[] px = model.preprocess(png);
                float[] prompt = model.visualPrompt(model.encodeImages(List.of(px), false), 0);
                texts[engine.ordinal()] = model.generation().generate(List.of(new GenerationRequest(prompt, null)),
                        GenerationParams.greedy(5)).get(0).text();
                assertEquals(2, itm.retrieval().match(itm.preprocess(png), List.of("a red circle on the left", "two blue squares at the top")).size());
            }
        }
        assertEquals(texts[0], texts[1], "both engines generate the same from the exported checkpoint");
        assertEquals(List.of("BLIP-2 (stage 1 + stage 2)", "BLIP-2 with T5 (stage 1 + stage 2)", "stage 2 only (no representation learning)",
                "stage 1 without ITG (retrieval)", "ViT with its last layer (stage 1 + stage 2)",
                "CapFilt: pretrained on the web text", "CapFilt: pretrained on CapFilt's captions"),
                result.reports().stream().map(SceneEvaluation.Report::name).toList(), "the models, the ablations and CapFilt are evaluated");
        SceneEvaluation.Report withoutItg = result.reports().get(3);
        assertTrue(Double.isNaN(withoutItg.captionExactMatch()) && withoutItg.itcImageToText() != null, "retrieval alone");
        assertNotNull(result.reports().get(0).itcImageToText());
        assertTrue(Files.exists(dir.resolve("run/report.json")));
    }

    @Test
    void theT5CheckpointIsBlip2WithAT5AsTransformersLaysItOutAndServesOnBothEngines() throws IOException {
        Path t5 = result.generationT5();
        Blip2Config config = Blip2Config.load(t5);
        assertTrue(config.text() instanceof T5Config, "text_config is a T5's");
        T5Config c = (T5Config) config.text();
        assertTrue(c.gatedAct() && c.denseActFn().equals("gelu_new") && !c.tieWordEmbeddings(), "FlanT5's: gated GELU, its own LM head");
        assertEquals(SceneTokenizer.PAD, c.decoderStartTokenId());
        String card = Files.readString(t5.resolve("README.md"));
        assertTrue(card.contains("T5 v1.1") && card.contains("Question: {q} Short answer:") && card.contains("| stage2-t5 |"), card);
        assertTrue(Files.readString(t5.resolve("generation_config.json")).contains("\"decoder_start_token_id\" : " + SceneTokenizer.PAD));
        try (Weights w = Weights.open(t5)) {
            // what transformers' Blip2ForConditionalGeneration with a T5ForConditionalGeneration holds, no more, no less
            List<String> expected = Blip2WeightTree.tensors(config).stream().map(Blip2WeightTree.Tensor::name).sorted().toList();
            assertEquals(expected, w.names().stream().sorted().toList());
            assertTrue(expected.contains("language_model.lm_head.weight")
                    && expected.contains("language_model.decoder.block.1.layer.2.DenseReluDense.wo.weight"), expected.toString());
            for (Blip2WeightTree.Tensor t : Blip2WeightTree.tensors(config)) {
                assertArrayEquals(t.shape(), w.shape(t.name()), t.name());
            }
        }
        byte[] png = SceneRenderer.png(SceneGenerator.sample(SceneGenerator.Split.HELDOUT, 0), 32);
        String[] texts = new String[2];
        for (Engines.Kind engine : Engines.Kind.values()) {
            try (NDManager m = Engines.newManager(engine); Blip2Model model = Blip2Model.load(t5, m)) {
                assertEquals("Question: what color is it? Short answer:", model.generation().vqaPrompt("what color is it?"));
                int[] ids = model.generation().promptIds("a photo of");
                assertEquals(SceneTokenizer.EOS, ids[ids.length - 1], "T5's template ends a text with </s>: " + Arrays.toString(ids));
                float[] prompt = model.visualPrompt(model.encodeImages(List.of(model.preprocess(png)), false), 0);
                texts[engine.ordinal()] = model.generation().generate(List.of(new GenerationRequest(prompt, "a photo of")),
                        GenerationParams.greedy(5)).get(0).text();
            }
        }
        assertEquals(texts[0], texts[1], "both engines generate the same from the exported T5 checkpoint");
    }

    /**
     * The ablations: stage 1 without ITG reports no ITG loss; the model keeping the ViT's last layer is one layer
     * longer than BLIP-2's, which reads the second-last layer.
     */
    @Test
    void theAblationsTrainWhatTheyLeaveOut() throws IOException {
        String withoutItg = log.lines().filter(l -> l.startsWith(Ablations.WITHOUT_ITG + " step 3/3")).findFirst().orElseThrow();
        assertTrue(withoutItg.contains(" itc ") && withoutItg.contains(" itm ") && !withoutItg.contains(" itg "), withoutItg);
        Path full = dir.resolve("models/blip2-scenes-opt-vit-with-last-layer");
        assertEquals(TINY.vLayers(), Blip2Config.load(full).vision().numHiddenLayers());
        String last = "vision_model.encoder.layers." + (TINY.vLayers() - 1) + ".mlp.fc1.weight";
        try (Weights w = Weights.open(full)) {
            assertTrue(w.contains(last), "the last layer is kept");
        }
        for (Path blip2 : List.of(result.generation(), result.retrieval(), result.generationT5())) {
            assertEquals(TINY.vLayers() - 1, Blip2Config.load(blip2).vision().numHiddenLayers(), blip2.toString());
            try (Weights w = Weights.open(blip2)) {
                assertFalse(w.contains(last), "BLIP-2 reads the second-last layer: " + blip2);
                assertTrue(w.contains("vision_model.encoder.layers." + (TINY.vLayers() - 2) + ".mlp.fc1.weight"));
            }
        }
        Path run = dir.resolve("run");
        String firstLayer = "vision_model.encoder.layers.0.mlp.fc1.weight";
        assertSame(run.resolve(Trainer.LANGUAGE_MODEL), run.resolve(Ablations.VIT_FULL_STAGE2), firstLayer); // frozen, as pretrained
        assertSame(run.resolve(Trainer.LANGUAGE_MODEL), run.resolve(Ablations.VIT_FULL_STAGE2), last);
        assertSame(run.resolve(Trainer.LANGUAGE_MODEL), run.resolve(Trainer.STAGE2), firstLayer);
        assertChanged(run.resolve(Trainer.LANGUAGE_MODEL), run.resolve(Ablations.VIT_FULL_STAGE1), "query_tokens");
    }

    @Test
    void capfiltPretrainsOnTheWebTextAndOnTheCaptionsItKeeps() throws IOException {
        Path run = dir.resolve("run");
        Path lm = run.resolve(Trainer.LANGUAGE_MODEL);
        Path web1 = run.resolve(CapFilt.WEB_STAGE1);
        Path web2 = run.resolve(CapFilt.WEB_STAGE2);
        String itg = "train.itg_head.transform.dense.weight";
        // pretraining on the web text from the frozen encoders; the captioner from its stage 2, the filter from its
        // stage 1 with ITC and ITM alone; the second pretraining from the frozen encoders again
        assertChanged(lm, web1, "query_tokens");
        assertChanged(web1, web2, "language_projection.weight");
        assertChanged(web2, run.resolve(CapFilt.CAPTIONER), "language_projection.weight");
        assertChanged(web1, run.resolve(CapFilt.FILTER), "itm_head.weight");
        String filter = log.lines().filter(l -> l.startsWith(CapFilt.FILTER + " step 1/")).findFirst().orElseThrow();
        assertTrue(filter.contains(" itc ") && filter.contains(" itm ") && !filter.contains(" itg "), filter);
        assertChanged(lm, run.resolve(CapFilt.BOOTSTRAPPED_STAGE1), itg);
        assertSame(lm, run.resolve(CapFilt.BOOTSTRAPPED_STAGE1), "vision_model.encoder.layers.0.mlp.fc1.weight");
        assertEquals(TINY.vLayers() - 1, Blip2Config.load(dir.resolve("models/blip2-scenes-opt-capfilt")).vision().numHiddenLayers(),
                "CapFilt's models are BLIP-2's: the ViT without its last layer");

        Recipe recipe = tiny(3);
        CapFilt.Candidates[] all = new com.fasterxml.jackson.databind.ObjectMapper()
                .readValue(run.resolve(CapFilt.CAPTIONS).toFile(), CapFilt.Candidates[].class);
        assertEquals(CapFilt.webScenes(recipe), all.length, "one entry per web scene");
        int keptRight = 0;
        int varied = 0;
        java.util.Set<String> samples = new java.util.HashSet<>();
        for (CapFilt.Candidates c : all) {
            var scene = SceneGenerator.sample(SceneGenerator.Split.TRAIN, c.scene());
            assertEquals(CapFilt.SAMPLES + 1, c.candidates().size());
            assertEquals(io.blip2stream.train.scenes.WebCaptions.of(scene, c.scene()).text(), c.candidates().get(CapFilt.SAMPLES),
                    "the web text is the last candidate");
            samples.addAll(c.candidates().subList(0, CapFilt.SAMPLES));
            varied += new java.util.HashSet<>(c.candidates().subList(0, CapFilt.SAMPLES)).size() > 1 ? 1 : 0;
            // the kept caption is one of the two best by the filter's ITM probability
            double[] sorted = c.itm().clone();
            Arrays.sort(sorted);
            double second = sorted[sorted.length - 2];
            int at = c.candidates().indexOf(c.kept());
            assertTrue(at >= 0, "kept a candidate");
            double keptScore = -1;
            for (int k = 0; k < c.candidates().size(); k++) {
                keptScore = c.candidates().get(k).equals(c.kept()) ? Math.max(keptScore, c.itm()[k]) : keptScore;
            }
            assertTrue(keptScore >= second, c.kept() + " " + Arrays.toString(c.itm()));
            keptRight += c.kept().equals(scene.caption()) ? 1 : 0;
        }
        assertTrue(samples.size() > 1, "the captioner samples: " + samples);
        // ten samples of a scene, not one sample ten times (a seed each; the tiny captioner is far from sure)
        assertTrue(varied > all.length / 2, varied + " of " + all.length + " scenes have samples that differ");
        var report = new com.fasterxml.jackson.databind.ObjectMapper().readTree(run.resolve("report.json").toFile()).get("capfilt");
        assertEquals((double) keptRight / all.length, report.get("keptCaptionsRight").asDouble(), 1e-9, "the filter's precision");
        assertEquals(all.length, report.get("webScenes").asInt());
        // both pretrainings evaluated on clean held-out scenes: captions and retrieval, no questions
        List<SceneEvaluation.Report> capfilt = result.reports().stream().filter(r -> r.name().startsWith("CapFilt")).toList();
        assertEquals(2, capfilt.size(), result.reports().toString());
        for (SceneEvaluation.Report r : capfilt) {
            assertFalse(Double.isNaN(r.captionExactMatch()));
            assertNotNull(r.itmImageToText());
            assertTrue(Double.isNaN(r.vqaAccuracy()));
        }
        assertTrue(log.contains("kept captions right (the filter's precision)"), log);
    }

    @Test
    void aStoppedStageResumesFromItsCheckpointToTheSameWeights() throws IOException {
        Path run = dir.resolve("resume");
        Recipe recipe = tiny(6);
        recipe.spec().writeInitialState(run.resolve("init"), 3);
        Path whole = stage(recipe, run, "whole", -1);
        assertThrows(IllegalStateException.class, () -> stage(recipe, run, "stopped", 4));
        assertTrue(Files.exists(run.resolve("stopped/checkpoint/progress.json")));
        Path resumed = stage(recipe, run, "stopped", -1);
        for (String n : List.of("vision_model.encoder.layers.1.mlp.fc2.weight", "train.vision_heads.place.bias")) {
            float[] a = tensor(whole, n);
            float[] b = tensor(resumed, n);
            for (int i = 0; i < a.length; i++) {
                assertEquals(a[i], b[i], 1e-6f, n + "[" + i + "]");
            }
        }
    }

    /** The vision stage, checkpointing every 2 steps; it throws at step {@code failAt} (if not negative). */
    private static Path stage(Recipe recipe, Path run, String name, int failAt) throws IOException {
        Path out = run.resolve(name);
        Path checkpoint = out.resolve("checkpoint");
        boolean resume = Files.exists(checkpoint.resolve("progress.json"));
        Predicate<String> params = VisionPretraining.PARAMETERS;
        try (NDManager m = Engines.newManager(Engines.Kind.PYTORCH);
             io.blip2stream.model.text.TextTokenizer tok = io.blip2stream.model.text.TextTokenizer.load(run.resolve("init"));
             SceneModel model = SceneModel.load(recipe.spec(), resume ? checkpoint.resolve("model") : run.resolve("init"), m)) {
            SceneData data = new SceneData(recipe.trainScenes(), recipe.seed(), recipe.spec().imageSize(),
                    io.blip2stream.model.config.PreprocessorConfig.load(run.resolve("init"), 32), tok);
            TrainLoop.Step step = VisionPretraining.step(model, data, recipe.vision().batch());
            TrainLoop.Step failing = (scope, s) -> {
                if (s == failAt) {
                    throw new IllegalStateException("stopped at step " + s);
                }
                return step.compute(scope, s);
            };
            TrainLoop.run(name, model, model.parameters(params), recipe.vision().schedule(), failing, checkpoint, 2,
                    new PrintStream(new ByteArrayOutputStream()));
            model.save(out);
        }
        return out;
    }
}
