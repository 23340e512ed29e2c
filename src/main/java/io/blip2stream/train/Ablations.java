package io.blip2stream.train;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The paper's ablations, each trained with the full recipe's steps from the same frozen unimodal models, so that its
 * evaluation stands beside the full recipe's:
 * <ul>
 *   <li>without stage 1: stage 2 from a fresh Q-Former (the paper's Figure 5: representation learning is what lets
 *   the LLM read the visual prompt);</li>
 *   <li>stage 1 without ITG: ITC and ITM alone (the paper: ITG "improves retrieval", because it makes the queries
 *   extract what the text says); retrieval is what it is evaluated on;</li>
 *   <li>the ViT's last layer kept: BLIP-2 uses the second-last layer's output of its frozen ViT ("slightly better
 *   performance"), and so does the recipe ({@link Recipe#blip2Spec()}); here stage 1 and stage 2 run on all of the
 *   ViT's layers, and the exported checkpoints hold all of them.</li>
 * </ul>
 */
final class Ablations {
    private Ablations() {}

    static final String STAGE2_ONLY = "ablation-stage2-only";
    static final String WITHOUT_ITG = "ablation-stage1-without-itg";
    static final String VIT_FULL_STAGE1 = "ablation-vit-with-last-layer-stage1";
    static final String VIT_FULL_STAGE2 = "ablation-vit-with-last-layer-stage2";

    /** Where the ablations' checkpoints went. */
    record Models(Path stage2Only, Path retrievalWithoutItg, Path generationVitFull, Path retrievalVitFull) {}

    static void train(Trainer trainer, Recipe recipe, Path out, SceneData data, NDManager manager, List<TrainLoop.Curve> curves)
            throws IOException {
        Path lm = out.resolve(Trainer.LANGUAGE_MODEL);
        Path init = out.resolve(Trainer.BLIP2_INIT);
        SceneModelSpec blip2 = recipe.blip2Spec();
        // the same frozen encoders; the Q-Former, queries and projection as initialised
        curves.add(trainer.stage(STAGE2_ONLY, init, blip2, recipe.generative(), GenerativeLearning.PARAMETERS, manager,
                m -> GenerativeLearning.step(m, data, recipe.generative().batch())));
        curves.add(trainer.stage(WITHOUT_ITG, init, blip2, recipe.representation(), RepresentationLearning.PARAMETERS,
                manager, m -> RepresentationLearning.step(m, data, recipe.representation().batch(), false)));
        // every layer of the pretrained ViT, as pretrained
        curves.add(trainer.stage(VIT_FULL_STAGE1, lm, recipe.spec(), recipe.representation(), RepresentationLearning.PARAMETERS,
                manager, m -> RepresentationLearning.step(m, data, recipe.representation().batch())));
        curves.add(trainer.stage(VIT_FULL_STAGE2, out.resolve(VIT_FULL_STAGE1), recipe.spec(), recipe.generative(),
                GenerativeLearning.PARAMETERS, manager, m -> GenerativeLearning.step(m, data, recipe.generative().batch())));
    }

    static Models export(Recipe recipe, Path out, Path exportDir) throws IOException {
        Models m = new Models(exportDir.resolve("blip2-scenes-opt-without-stage1"), exportDir.resolve("blip2-scenes-itm-without-itg"),
                exportDir.resolve("blip2-scenes-opt-vit-with-last-layer"), exportDir.resolve("blip2-scenes-itm-vit-with-last-layer"));
        Export.generation(recipe.blip2Spec(), out.resolve(STAGE2_ONLY), m.stage2Only());
        Export.retrieval(recipe.blip2Spec(), out.resolve(WITHOUT_ITG), m.retrievalWithoutItg());
        Export.generation(recipe.spec(), out.resolve(VIT_FULL_STAGE2), m.generationVitFull());
        Export.retrieval(recipe.spec(), out.resolve(VIT_FULL_STAGE1), m.retrievalVitFull());
        return m;
    }

    static List<SceneEvaluation.Report> evaluate(Models m, int scenes, PrintStream progress) throws IOException {
        List<SceneEvaluation.Report> out = new ArrayList<>();
        out.add(SceneEvaluation.run("stage 2 only (no representation learning)", m.stage2Only(), null, Engines.Kind.PYTORCH,
                scenes, progress));
        out.add(SceneEvaluation.run("stage 1 without ITG (retrieval)", null, m.retrievalWithoutItg(), Engines.Kind.PYTORCH,
                scenes, progress));
        out.add(SceneEvaluation.run("ViT with its last layer (stage 1 + stage 2)", m.generationVitFull(), m.retrievalVitFull(),
                Engines.Kind.PYTORCH, scenes, progress));
        return out;
    }
}
