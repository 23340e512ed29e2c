package io.blip2stream.train;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.training.GradientCollector;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.weights.LoadedTensor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The loop every stage runs: forward and backward under a gradient collector, AdamW on the stage's parameters,
 * the schedule, a progress line (step, losses, learning rate, steps per second, time left), and checkpoints
 * (the model, the optimizer's moments, the step) every {@code checkpointEvery} steps that a later run resumes.
 * Batches are a function of the step number alone, so a resumed run sees the batches the first would have.
 */
final class TrainLoop {

    /** One step's losses: the total to minimise and its named parts, scalars in the step's scope. */
    record Losses(NDArray total, Map<String, NDArray> parts) {}

    interface Step {
        Losses compute(NDManager scope, int step);
    }

    /** What a finished stage reports: the loss parts averaged over the first and the last tenth of its steps. */
    record Curve(String stage, int steps, double seconds, Map<String, Double> first, Map<String, Double> last,
                 List<Map<String, Double>> points) {}

    /** Gradients are clipped to this global L2 norm. */
    static final float MAX_GRADIENT_NORM = 5.0f;

    private TrainLoop() {}

    static Curve run(String stage, SceneModel model, List<LoadedTensor> params, Schedule schedule, Step step,
                     Path checkpointDir, int checkpointEvery, PrintStream progress) throws IOException {
        AdamW opt = new AdamW(params, model.manager);
        int start = 0;
        List<Map<String, Double>> points = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        Path state = checkpointDir.resolve("progress.json");
        if (Files.exists(state)) {
            JsonNode n = json.readTree(state.toFile());
            start = n.get("step").asInt();
            opt.load(checkpointDir.resolve("optimizer"));
            n.get("points").forEach(p -> {
                Map<String, Double> m = new LinkedHashMap<>();
                p.fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asDouble()));
                points.add(m);
            });
            progress.printf(Locale.ROOT, "%s: resuming at step %d of %d%n", stage, start, schedule.steps());
        }
        for (LoadedTensor p : params) {
            p.array().setRequiresGradient(true);
        }
        Engine engine = model.manager.getEngine();
        long t0 = System.nanoTime();
        int done = 0;
        Map<String, Double> window = new LinkedHashMap<>();
        Map<String, Integer> windowCounts = new LinkedHashMap<>(); // a metric may be missing from a step
        int skipped = 0;
        int every = Math.max(1, Math.min(25, schedule.steps() / 20));
        for (int s = start; s < schedule.steps(); s++) {
            float lr = schedule.at(s);
            try (NDManager scope = model.manager.newSubManager()) {
                Map<String, Double> values = new LinkedHashMap<>();
                try (GradientCollector gc = engine.newGradientCollector()) {
                    Losses l = step.compute(scope, s);
                    gc.backward(l.total());
                    values.put("loss", (double) l.total().getFloat());
                    l.parts().forEach((k, v) -> values.put(k, (double) v.getFloat()));
                }
                float norm = opt.step(lr, MAX_GRADIENT_NORM);
                if (!Float.isFinite(norm)) {
                    skipped++;
                    progress.printf(Locale.ROOT, "%s step %d: gradient norm %s, step skipped%n", stage, s + 1, norm);
                } else {
                    values.put("grad_norm", (double) norm);
                    values.forEach((k, v) -> {
                        window.merge(k, v, Double::sum);
                        windowCounts.merge(k, 1, Integer::sum);
                    });
                }
            }
            done++;
            if ((s + 1) % every == 0 || s + 1 == schedule.steps()) {
                double elapsed = (System.nanoTime() - t0) / 1e9;
                double rate = done / elapsed;
                Map<String, Double> point = new LinkedHashMap<>();
                point.put("step", (double) (s + 1));
                StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%s step %d/%d", stage, s + 1, schedule.steps()));
                for (var e : window.entrySet()) {
                    double mean = e.getValue() / windowCounts.get(e.getKey());
                    point.put(e.getKey(), mean);
                    line.append(String.format(Locale.ROOT, " %s %.4f", e.getKey(), mean));
                }
                point.put("lr", (double) lr);
                points.add(point);
                line.append(String.format(Locale.ROOT, " lr %.2e %.2f steps/s, %s left", lr, rate,
                        duration((schedule.steps() - s - 1) / rate)));
                if (skipped > 0) {
                    line.append(" (").append(skipped).append(" steps skipped: gradient not finite)");
                }
                progress.println(line);
                window.clear();
                windowCounts.clear();
            }
            if (checkpointEvery > 0 && (s + 1) % checkpointEvery == 0 && s + 1 < schedule.steps()) {
                model.save(checkpointDir.resolve("model"));
                opt.save(checkpointDir.resolve("optimizer"));
                ObjectNode n = json.createObjectNode();
                n.put("step", s + 1);
                n.set("points", json.valueToTree(points));
                Files.writeString(state, json.writeValueAsString(n));
            }
        }
        for (LoadedTensor p : params) {
            p.array().setRequiresGradient(false);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        return new Curve(stage, schedule.steps(), seconds, average(points, 0, Math.max(1, points.size() / 10)),
                average(points, Math.max(0, points.size() - Math.max(1, points.size() / 10)), points.size()), points);
    }

    private static Map<String, Double> average(List<Map<String, Double>> points, int from, int to) {
        Map<String, Double> sum = new LinkedHashMap<>();
        Map<String, Integer> count = new LinkedHashMap<>();
        for (int i = from; i < to; i++) {
            points.get(i).forEach((k, v) -> {
                sum.merge(k, v, Double::sum);
                count.merge(k, 1, Integer::sum);
            });
        }
        sum.replaceAll((k, v) -> v / count.get(k));
        sum.remove("step");
        sum.remove("lr");
        return sum;
    }

    static String duration(double seconds) {
        long s = Math.round(seconds);
        return s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
