package io.blip2stream.cli;

import io.blip2stream.train.Recipe;
import io.blip2stream.train.SceneEvaluation;
import io.blip2stream.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** The {@code train} command: trains the scene model with BLIP-2's recipe and exports its checkpoints. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Train the scene model with BLIP-2's recipe on DJL's PyTorch engine.",
                "First the frozen unimodal models: a ViT on scene attributes (BLIP-2 reads its second-last layer), an OPT-style decoder and a T5 encoder-decoder "
                        + "(FlanT5's architecture) on scene text; then stage 1 (ITC, ITM, ITG), stage 2 (generation through each "
                        + "frozen LM), the export in the Hugging Face layout and the evaluation on held-out scenes; with --ablations, "
                        + "the paper's ablations too (without stage 1, without ITG, with the ViT's last layer kept); with --capfilt, "
                        + "CapFilt's bootstrapping of noisy web captions and what it gains.",
                "Stopped runs resume from their last checkpoint when started again."})
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--out", defaultValue = "runs/scenes", paramLabel = "DIR",
            description = "training states, checkpoints and report.json (default runs/scenes)")
    Path out;

    @Option(names = "--export", paramLabel = "DIR", description = "where the trained checkpoints go (default OUT/models)")
    Path export;

    @Option(names = "--steps", paramLabel = "N", description = "every stage runs N steps (a smoke run); default: the recipe's")
    Integer steps;

    @Option(names = "--scale", defaultValue = "1", paramLabel = "F", description = "multiply every stage's steps by F")
    double scale;

    @Option(names = "--eval-scenes", paramLabel = "N", description = "held-out scenes to evaluate on (default 300; 0: none)")
    Integer evalScenes;

    @Option(names = "--seed", paramLabel = "N", description = "initialisation and data order (default 42)")
    Long seed;

    @Option(names = "--ablations", description = "also train and evaluate the paper's ablations (stage 2 without stage 1, "
            + "stage 1 without ITG, stage 1 and 2 with the ViT's last layer kept): about 30 minutes more on 2 cores")
    boolean ablations;

    @Option(names = "--capfilt", description = "also run CapFilt on the scenes' noisy-web captions: pretraining on the web "
            + "text against pretraining on the captions CapFilt keeps (a captioner's nucleus samples ranked by a filter), "
            + "both evaluated on clean held-out scenes, with the filter's precision: about 25 minutes more on 2 cores")
    boolean capfilt;

    @Override
    public Integer call() throws Exception {
        Recipe r = Recipe.defaults();
        if (scale != 1) {
            r = r.scaled(scale);
        }
        if (steps != null) {
            if (steps < 1) {
                throw new Main.UserError("--steps must be at least 1");
            }
            r = r.withSteps(steps);
        }
        if (evalScenes != null) {
            r = r.withEvalScenes(evalScenes);
        }
        if (seed != null) {
            r = r.withSeed(seed);
        }
        Path exportDir = export != null ? export : out.resolve("models");
        Trainer.Result result = new Trainer(r, out, System.err).run(ablations, capfilt, exportDir);
        System.out.printf(Locale.ROOT, "trained in %s; models: %s, %s, %s%s%n", duration(result.seconds()), result.generation(),
                result.generationT5(), result.retrieval(), result.ablation() != null ? ", " + result.ablation() : "");
        for (SceneEvaluation.Report rep : result.reports()) {
            System.out.println(EvaluateCommand.line(rep));
        }
        System.out.println("report: " + out.resolve("report.json"));
        return 0;
    }

    static String duration(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    }
}
