package io.blip2stream.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.train.SceneEvaluation;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** The {@code evaluate} command: scores a scene model on held-out scenes through the serving code. */
@Command(name = "evaluate", mixinStandardHelpOptions = true,
        description = {"Evaluate a scene model on held-out scenes through the serving code.",
                "It reports caption exact match, VQA accuracy, and image-to-text / text-to-image recall@1 by ITC and by ITM re-ranking."})
final class EvaluateCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR",
            description = "a scene model's generation checkpoint (from train: OUT/models/blip2-scenes-opt)")
    Path model;

    @Option(names = "--retrieval-model", paramLabel = "DIR",
            description = "a retrieval checkpoint (default: blip2-scenes-itm beside --model, if there; 'none' to skip)")
    String retrievalModel;

    @Option(names = "--scenes", defaultValue = "300", paramLabel = "N", description = "held-out scenes (default 300)")
    int scenes;

    @Option(names = "--engine", defaultValue = "${env:BLIP2_ENGINE:-tensorflow}", description = "tensorflow (default) or pytorch")
    String engine;

    @Option(names = "--dtype", paramLabel = "DTYPE", defaultValue = "${env:BLIP2_DTYPE:-auto}",
            description = "the precision the weights are kept in: float32, bfloat16, int8, or auto (default)")
    String dtype;

    @Option(names = "--json", description = "the report as one JSON object")
    boolean json;

    @Override
    public Integer call() throws Exception {
        ModelOptions m = new ModelOptions();
        m.model = model;
        m.engine = engine;
        m.dtype = dtype;
        m.checkGenerationModel();
        model = m.model;
        Path retrieval = null;
        if (retrievalModel == null) {
            Path sibling = model.resolveSibling("blip2-scenes-itm");
            retrieval = sibling.toFile().isDirectory() ? sibling : null;
        } else if (!retrievalModel.equals("none")) {
            retrieval = Path.of(retrievalModel);
            ModelOptions r = new ModelOptions();
            r.model = retrieval;
            r.dtype = dtype;
            r.checkRetrievalModel();
        }
        if (scenes < 1) {
            throw new Main.UserError("--scenes must be at least 1");
        }
        SceneEvaluation.Report rep = SceneEvaluation.run(model.getFileName().toString(), model, retrieval, m.engineKind(), dtype,
                scenes, System.err);
        if (json) {
            System.out.println(new ObjectMapper().writeValueAsString(rep));
        } else {
            System.out.println(line(rep));
            for (String[] e : rep.examples()) {
                System.out.printf("  %-40s -> %s%n", e[0], e[1]);
            }
        }
        return 0;
    }

    static String line(SceneEvaluation.Report r) {
        String s = String.format(Locale.ROOT, "%s on %d held-out scenes", r.name(), r.scenes());
        if (!Double.isNaN(r.captionExactMatch())) { // a retrieval model alone has no captions
            s += String.format(Locale.ROOT, ": caption exact match %.1f%%", 100 * r.captionExactMatch());
            if (!Double.isNaN(r.vqaAccuracy())) { // a model trained on captions alone (CapFilt's) is not asked
                s += String.format(Locale.ROOT, ", VQA accuracy %.1f%% (training phrasings; %.1f%% on phrasings never "
                        + "trained on, %.1f%% on the canonical ones)", 100 * r.vqaAccuracy(), 100 * r.vqaHeldOutPhrasings(),
                        100 * r.vqaCanonical());
            }
        }
        if (r.itcImageToText() != null) {
            s += (Double.isNaN(r.captionExactMatch()) ? ": " : ", ") + String.format(Locale.ROOT,
                    "recall@1 image-to-text %.1f%% (ITC) %.1f%% (ITM), text-to-image %.1f%% (ITC) %.1f%% (ITM)",
                    100 * r.itcImageToText(), 100 * r.itmImageToText(), 100 * r.itcTextToImage(), 100 * r.itmTextToImage());
        }
        return s;
    }
}
