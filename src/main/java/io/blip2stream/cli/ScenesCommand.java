package io.blip2stream.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneRenderer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/** The {@code scenes} command: renders the synthetic scenes the scene model is trained and evaluated on. */
@Command(name = "scenes", mixinStandardHelpOptions = true,
        description = {"Render synthetic scenes (the scene model's training and held-out data) as PNGs.",
                "Their captions and question/answer pairs go to scenes.jsonl."})
final class ScenesCommand implements Callable<Integer> {
    @Option(names = "--split", defaultValue = "heldout", description = "train or heldout (default heldout)")
    String split;

    @Option(names = "--count", defaultValue = "8", paramLabel = "N", description = "scenes (default 8)")
    int count;

    @Option(names = "--from", defaultValue = "0", paramLabel = "I", description = "index of the first scene (default 0)")
    long from;

    @Option(names = "--size", defaultValue = "64", paramLabel = "PX", description = "image side in pixels (default 64)")
    int size;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "the folder for the PNGs and scenes.jsonl")
    Path out;

    @Override
    public Integer call() throws Exception {
        SceneGenerator.Split s;
        try {
            s = SceneGenerator.Split.valueOf(split.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new Main.UserError("unknown split '" + split + "' (train or heldout)");
        }
        if (count < 1 || size < 16 || from < 0) {
            throw new Main.UserError("--count must be at least 1, --size at least 16 and --from not negative");
        }
        Files.createDirectories(out);
        ObjectMapper json = new ObjectMapper();
        StringBuilder lines = new StringBuilder();
        for (long i = from; i < from + count; i++) {
            Scene scene = SceneGenerator.sample(s, i);
            String file = String.format(Locale.ROOT, "%s-%05d.png", s.name().toLowerCase(Locale.ROOT), i);
            Files.write(out.resolve(file), SceneRenderer.png(scene, size));
            ObjectNode n = json.createObjectNode();
            n.put("image", file);
            n.put("caption", scene.caption());
            ArrayNode qa = n.putArray("questions");
            for (Scene.QuestionAnswer q : scene.questions(new SplittableRandom(i))) {
                qa.addObject().put("kind", q.kind().name().toLowerCase(Locale.ROOT)).put("question", q.question()).put("answer", q.answer());
            }
            lines.append(json.writeValueAsString(n)).append('\n');
            System.out.println(file + "  " + scene.caption());
        }
        Files.writeString(out.resolve("scenes.jsonl"), lines);
        return 0;
    }
}
