package io.blip2stream.cli;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.weights.SafetensorsWriter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** The {@code embed} command: writes an image's and texts' tensors (embeddings, intermediates) to a safetensors file. */
@Command(name = "embed", mixinStandardHelpOptions = true,
        description = {"Write tensors of an image and/or a text to a safetensors file (float32, batch 1).",
                "--image: pixel_values, vision_last_hidden_state, qformer_last_hidden_state, and language_projection "
                        + "(generation checkpoints) or image_embeds [1, queries, dim] (retrieval checkpoints).",
                "--text (retrieval checkpoints): text_embeds [1, dim]."})
final class EmbedCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Option(names = "--image", paramLabel = "FILE", description = "a PNG, JPEG, BMP or GIF image")
    Path image;

    @Option(names = "--text", paramLabel = "T", description = "a text to embed (retrieval checkpoints)")
    String text;

    @Option(names = "--out", required = true, paramLabel = "FILE.safetensors", description = "the safetensors file to write")
    Path out;

    @Override
    public Integer call() throws Exception {
        Blip2Config c = model.checkModel();
        if (image == null && text == null) {
            throw new Main.UserError("embed needs --image, --text or both");
        }
        if (text != null && !c.isRetrieval()) {
            throw new Main.UserError(model.model + " is not a retrieval checkpoint: --text needs one");
        }
        ModelOptions.Image img = image == null ? null : ModelOptions.readImage(image);
        Path parent = out.toAbsolutePath().getParent();
        if (parent != null && !Files.isDirectory(parent)) {
            throw new Main.UserError("output folder " + parent + " does not exist");
        }
        try (NDManager manager = Engines.newManager(model.engineKind());
             Blip2Model m = Blip2Model.load(model.model, manager, model.dtype())) {
            ModelOptions.noteKernels(m);
            SafetensorsWriter w = new SafetensorsWriter();
            int q = c.numQueryTokens();
            if (img != null) {
                float[] px = m.processor().preprocess(img.rgb());
                Blip2Model.ImageFeatures f = m.encodeImages(List.of(px), true);
                w.put("pixel_values", px, 1, 3, m.processor().height(), m.processor().width())
                        .put("vision_last_hidden_state", f.visionLastHiddenState(), 1, c.vision().numPositions(), c.vision().hiddenSize())
                        .put("qformer_last_hidden_state", f.qformerLastHiddenState(), 1, q, c.qformer().hiddenSize());
                if (m.canGenerate()) {
                    w.put("language_projection", f.languageProjection(), 1, q, m.generation().projectionWidth());
                } else {
                    w.put("image_embeds", f.imageEmbeds(), 1, q, m.retrieval().embeddingSize());
                }
            }
            if (text != null) {
                w.put("text_embeds", m.retrieval().embedTexts(List.of(text)), 1, m.retrieval().embeddingSize());
            }
            w.write(out);
        }
        return 0;
    }
}
