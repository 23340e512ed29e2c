package io.blip2stream.train;

import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneRenderer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/** The README.md written next to each exported checkpoint: what it is, the recipe that made it, and its scores. */
final class ModelCard {
    private ModelCard() {}

    /** The card of a checkpoint of shapes {@code s} (the OPT or the T5 branch of the run). */
    static String markdown(String name, String architecture, SceneModelSpec s, Recipe r, List<TrainLoop.Curve> curves,
                           List<SceneEvaluation.Report> reports, double seconds) {
        StringBuilder b = new StringBuilder();
        b.append("# ").append(name).append("\n\n");
        b.append("A BLIP-2 checkpoint (`").append(architecture).append("`) trained from scratch by blip2-stream's `train` ")
                .append("command on synthetic scenes: one to four objects of one shape (circle, square, triangle, cross) and one ")
                .append("colour (red, green, blue, yellow, purple, orange), grouped on the left, on the right, at the top, at the ")
                .append("bottom or in the middle of a 64x64 image. It captions them (\"two red circles on the left\") and answers ")
                .append("questions about colour, count, shape and place. It knows nothing else: a photograph gets a caption about ")
                .append("shapes. It loads in this project and in transformers.\n\n");
        b.append("## Architecture\n\n");
        b.append(String.format(Locale.ROOT, "- Image encoder: ViT, %dx%d images in %dx%d patches, %d layers of %d, %d heads "
                        + "(pre-trained here on scene attributes, then frozen%s)%n", s.imageSize(), s.imageSize(), s.patch(), s.patch(),
                s.vLayers(), s.vHidden(), s.vHeads(), s.vLayers() < r.spec().vLayers() ? String.format(Locale.ROOT,
                        "; pre-trained with %d layers, the last removed as BLIP-2 does: the Q-Former reads the second-last",
                        r.spec().vLayers()) : ""));
        b.append(String.format(Locale.ROOT, "- Q-Former: %d learned queries, %d layers of %d, %d heads, cross-attention every "
                + "second layer, ITC embeddings of %d%n", s.queries(), s.qLayers(), s.qHidden(), s.qHeads(), s.embedDim()));
        if (s.t5()) {
            b.append(String.format(Locale.ROOT, "- Language model: T5 v1.1 (FlanT5's architecture: RMS norms, relative position "
                    + "buckets, gated GELU, its own LM head), encoder and decoder of %d layers of %d, %d heads, d_ff %d, a byte-level "
                    + "BPE vocabulary of %d (pre-trained here on scene text with a prefix-LM objective, then frozen); VQA prompt "
                    + "\"Question: {q} Short answer:\"%n%n", s.tLayers(), s.tHidden(), s.tHeads(), s.tFfn(), s.vocab()));
        } else {
            b.append(String.format(Locale.ROOT, "- Language model: OPT-style decoder, %d layers of %d, %d heads, FFN %d, a byte-level "
                    + "BPE vocabulary of %d (pre-trained here on scene text, then frozen); VQA prompt \"Question: {q} Answer:\"%n%n",
                    s.tLayers(), s.tHidden(), s.tHeads(), s.tFfn(), s.vocab()));
        }
        b.append("## Recipe (BLIP-2's two stages, both unimodal models frozen)\n\n");
        b.append("| stage | trains | steps | batch | learning rate | minutes | loss, first -> last tenth | accuracy, last tenth |\n"
                + "|---|---|---|---|---|---|---|---|\n");
        for (TrainLoop.Curve c : curves) {
            Recipe.Stage st = switch (c.stage()) {
                case Trainer.VISION -> r.vision();
                case Trainer.LANGUAGE_MODEL -> r.languageModel();
                case Trainer.STAGE1 -> r.representation();
                case Trainer.LANGUAGE_MODEL_T5 -> r.languageModelT5();
                case Trainer.STAGE2_T5 -> r.generativeT5();
                case Ablations.WITHOUT_ITG, Ablations.VIT_FULL_STAGE1 -> r.representation();
                default -> r.generative();
            };
            String trains = switch (c.stage()) {
                case Trainer.VISION -> "ViT + attribute heads (count, shape, colour, place) on [CLS] and on the mean of the patches";
                case Trainer.LANGUAGE_MODEL -> "language model, next token on documents of one to four texts about a scene "
                        + "(copy_*: attribute words read back from an earlier text)";
                case Trainer.STAGE1 -> "queries + Q-Former: ITC + ITM (hard negatives) + ITG, each scene beside a twin one attribute away";
                case Trainer.STAGE2 -> "queries + Q-Former + projection, LM loss through the frozen LM";
                case Trainer.LANGUAGE_MODEL_T5 -> "T5, prefix LM: the encoder reads texts about a scene and a prefix, the decoder "
                        + "writes the rest (copy_*: attribute words the encoder read)";
                case Trainer.STAGE2_T5 -> "queries + Q-Former + projection: visual prompt and prefix into the frozen T5's encoder, "
                        + "the suffix (caption, answer) from its decoder";
                case Ablations.WITHOUT_ITG -> "stage 1 with ITC and ITM alone (the ablation without ITG)";
                case Ablations.VIT_FULL_STAGE1 -> "stage 1 on the ViT's last layer (the ablation that keeps it)";
                case Ablations.VIT_FULL_STAGE2 -> "stage 2 on the ViT's last layer (the ablation that keeps it)";
                default -> "the same as stage 2, from a fresh Q-Former (the ablation)";
            };
            b.append(String.format(Locale.ROOT, "| %s | %s | %d | %d | %.0e -> %.0e | %.1f | %s | %s |%n", c.stage(), trains, c.steps(),
                    st.batch(), st.peakLr(), st.minLr(), c.seconds() / 60, losses(c.first(), c.last()), accuracies(c.last())));
        }
        b.append(String.format(Locale.ROOT, "%nAdamW (beta1 0.9, beta2 0.98, weight decay 0.05), linear warm-up then cosine decay; "
                + "random resized crops (80-100%% of the area, objects kept whole) and horizontal flips only where the caption "
                + "stays true. %d training scenes; seed %d. Whole run: %.1f minutes on the machine that trained it.%n%n",
                r.trainScenes(), r.seed(), seconds / 60));
        if (!reports.isEmpty()) {
            b.append("## Evaluation on held-out scenes (greedy decoding)\n\n");
            b.append("| model | scenes | caption exact match | VQA accuracy, training phrasings | VQA accuracy, phrasings never "
                    + "trained on | image-to-text R@1 (ITC / ITM) | text-to-image R@1 (ITC / ITM) |\n");
            b.append("|---|---|---|---|---|---|---|\n");
            for (SceneEvaluation.Report rep : reports) {
                b.append(String.format(Locale.ROOT, "| %s | %d | %s | %s | %s | %s | %s |%n", rep.name(), rep.scenes(),
                        percent(rep.captionExactMatch()), percent(rep.vqaAccuracy()), percent(rep.vqaHeldOutPhrasings()),
                        rep.itcImageToText() == null ? "-" : String.format(Locale.ROOT, "%.1f%% / %.1f%%", 100 * rep.itcImageToText(), 100 * rep.itmImageToText()),
                        rep.itcTextToImage() == null ? "-" : String.format(Locale.ROOT, "%.1f%% / %.1f%%", 100 * rep.itcTextToImage(), 100 * rep.itmTextToImage())));
            }
            SceneEvaluation.Report own = reports.stream().filter(x -> x.name().contains("T5") == s.t5()).findFirst()
                    .orElse(reports.get(0));
            b.append("\nVQA by kind of question (").append(own.name()).append("): ");
            own.vqaByKind().forEach((k, v) -> b.append(String.format(Locale.ROOT, "%s %.1f%%, ", k, 100 * v)));
            b.setLength(b.length() - 2);
            b.append("; phrasings never trained on: ");
            own.vqaHeldOutByKind().forEach((k, v) -> b.append(String.format(Locale.ROOT, "%s %.1f%%, ", k, 100 * v)));
            b.setLength(b.length() - 2);
            b.append("\n\n");
        }
        b.append("## Use\n\n```bash\njava -jar target/blip2-stream.jar scenes --count 4 --out scenes\n")
                .append("java -jar target/blip2-stream.jar caption --model ").append(name).append(" --image scenes/heldout-00000.png\n")
                .append("java -jar target/blip2-stream.jar evaluate --model ").append(name).append("\n```\n");
        return b.toString();
    }

    /** A share as "93.0%", or "-" where it was not measured (a retrieval model has no captions). */
    private static String percent(double share) {
        return Double.isNaN(share) ? "-" : String.format(Locale.ROOT, "%.1f%%", 100 * share);
    }

    private static boolean isAccuracy(String metric) {
        return metric.contains("acc") || metric.startsWith("copy_");
    }

    private static String accuracies(Map<String, Double> last) {
        StringBuilder b = new StringBuilder();
        last.forEach((k, v) -> {
            if (isAccuracy(k)) {
                b.append(String.format(Locale.ROOT, "%s %.1f%%, ", k, 100 * v));
            }
        });
        return b.length() > 2 ? b.substring(0, b.length() - 2) : "";
    }

    private static String losses(Map<String, Double> first, Map<String, Double> last) {
        StringBuilder b = new StringBuilder();
        for (String k : first.keySet()) {
            if (isAccuracy(k) || k.equals("grad_norm")) {
                continue;
            }
            b.append(String.format(Locale.ROOT, "%s %.3f -> %.3f, ", k, first.get(k), last.getOrDefault(k, Double.NaN)));
        }
        return b.length() > 2 ? b.substring(0, b.length() - 2) : "";
    }

    static void write(Path dir, String text) throws IOException {
        Files.writeString(dir.resolve("README.md"), text);
    }

    /** The held-out scenes a generation card shows as examples: the first four captioned, then one question each. */
    static final long FIRST_EXAMPLE = 1000;
    private static final Scene.QuestionAnswer.Kind[] EXAMPLE_QUESTIONS = {Scene.QuestionAnswer.Kind.COLOUR,
            Scene.QuestionAnswer.Kind.PLACE, Scene.QuestionAnswer.Kind.COUNT, Scene.QuestionAnswer.Kind.YES_NO};

    /**
     * The card's metadata header (YAML between {@code ---} lines, as the Hub reads it) with the Hub's {@code widget}
     * examples: held-out scenes rendered into {@code dir/examples/}, each with the scene's true caption or answer as
     * its expected output. The service's page offers them to click ({@code GET /v1/info}).
     */
    static String examplesHeader(Path dir) throws IOException {
        Path examples = Files.createDirectories(dir.resolve("examples"));
        StringBuilder b = new StringBuilder("---\nlibrary_name: blip2-stream\npipeline_tag: image-to-text\ntags:\n- blip-2\n"
                + "- synthetic-scenes\nwidget:\n");
        for (int k = 0; k < 4 + EXAMPLE_QUESTIONS.length; k++) {
            long i = FIRST_EXAMPLE + k;
            Scene scene = SceneGenerator.sample(SceneGenerator.Split.HELDOUT, i);
            String file = String.format(Locale.ROOT, "heldout-%05d.png", i);
            Files.write(examples.resolve(file), SceneRenderer.png(scene, 64));
            b.append("- src: examples/").append(file).append('\n');
            if (k < 4) {
                b.append("  example_title: ").append(quoted("held-out scene " + i)).append("\n  output:\n    text: ")
                        .append(quoted(scene.caption())).append('\n');
                continue;
            }
            Scene.QuestionAnswer.Kind kind = EXAMPLE_QUESTIONS[k - 4];
            Scene.QuestionAnswer qa = scene.questions(new SplittableRandom(i)).stream().filter(q -> q.kind() == kind).findFirst()
                    .orElseThrow();
            b.append("  example_title: ").append(quoted(qa.question())).append("\n  text: ").append(quoted(qa.question()))
                    .append("\n  output:\n    text: ").append(quoted(qa.answer())).append('\n');
        }
        return b.append("---\n").toString();
    }

    /** A YAML string in double quotes (JSON's escapes): never read as another type ("yes" is a boolean in YAML 1.1). */
    private static String quoted(String s) {
        try {
            return new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(s);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
