package io.blip2stream.cli;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.weights.SafetensorsWriter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "embed", mixinStandardHelpOptions = true,
        description = "Write the image side's tensors (pixel_values, vision_last_hidden_state, "
                + "qformer_last_hidden_state, language_projection; float32, batch 1) to a safetensors file.")
final class EmbedCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Option(names = "--out", required = true, paramLabel = "FILE.safetensors")
    Path out;

    @Override
    public Integer call() throws Exception {
        model.checkModel();
        ModelOptions.Image image = model.readImage();
        Path parent = out.toAbsolutePath().getParent();
        if (parent != null && !Files.isDirectory(parent)) {
            throw new Main.UserError("output folder " + parent + " does not exist");
        }
        try (NDManager manager = Engines.newManager(model.engineKind());
             Blip2Model m = Blip2Model.load(model.model, manager)) {
            float[] px = m.processor().preprocess(image.rgb());
            Blip2Model.ImageFeatures f = m.encodeImages(List.of(px), true);
            var c = m.config();
            int h = m.processor().height();
            int w = m.processor().width();
            new SafetensorsWriter()
                    .put("pixel_values", px, 1, 3, h, w)
                    .put("vision_last_hidden_state", f.visionLastHiddenState(), 1, c.vision().numPositions(), c.vision().hiddenSize())
                    .put("qformer_last_hidden_state", f.qformerLastHiddenState(), 1, c.numQueryTokens(), c.qformer().hiddenSize())
                    .put("language_projection", f.languageProjection(), 1, c.numQueryTokens(), m.projectionWidth())
                    .write(out);
        }
        return 0;
    }
}
