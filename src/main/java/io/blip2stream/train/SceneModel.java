package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.config.T5Config;
import io.blip2stream.model.llm.opt.OptForCausalLM;
import io.blip2stream.model.llm.t5.T5ForConditionalGeneration;
import io.blip2stream.model.nn.LayerNorm;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.qformer.Blip2QFormerModel;
import io.blip2stream.model.qformer.Blip2TextEmbeddings;
import io.blip2stream.model.vision.Blip2VisionModel;
import io.blip2stream.model.weights.LoadedTensor;
import io.blip2stream.model.weights.SafetensorsWriter;
import io.blip2stream.model.weights.Weights;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Every part of the scene model, loaded from a training state folder through the inference code's own loaders
 * with the weights recording, so that training computes with exactly the modules that serve, and finds their
 * parameters by checkpoint name.
 */
final class SceneModel implements AutoCloseable {

    /** The Q-Former's head for image-grounded text generation (BertLMPredictionHead); the decoder is tied to the word embeddings. */
    record ItgHead(Linear dense, LayerNorm layerNorm, NDArray bias) {}

    final SceneModelSpec spec;
    final Blip2Config config;
    final NDManager manager;
    private final Path dir;
    private final Weights weights;
    final Blip2VisionModel vision;
    final List<Linear> attributeHeads;   // per attribute: [D_vision, classes]
    final NDArray queryTokens;           // (1, Q, D)
    final Blip2TextEmbeddings textEmbeddings;
    final Blip2QFormerModel qformer;
    final Linear visionProjection;       // (D, E)
    final Linear textProjection;         // (D, E)
    final Linear itmHead;                // (D, 2)
    final ItgHead itgHead;
    final NDArray itcTemperature;        // (1)
    final Linear languageProjection;     // (D, H)
    final OptForCausalLM languageModel;  // the decoder-only language model, or null
    final T5ForConditionalGeneration t5; // the encoder-decoder language model, or null

    private SceneModel(SceneModelSpec spec, Path dir, NDManager engineManager) throws IOException {
        this.spec = spec;
        this.dir = dir;
        this.config = Blip2Config.load(dir);
        this.manager = engineManager.newSubManager();
        this.weights = Weights.open(dir).recording();
        Weights w = weights;
        NDManager m = manager;
        long qd = spec.qHidden();
        vision = Blip2VisionModel.load(w, m, config.vision(), "vision_model");
        attributeHeads = new ArrayList<>();
        for (int a = 0; a < SceneModelSpec.ATTRIBUTES.length; a++) {
            attributeHeads.add(Linear.load(w, m, "train.vision_heads." + SceneModelSpec.ATTRIBUTES[a], spec.vHidden(),
                    SceneModelSpec.ATTRIBUTE_CLASSES[a], true));
        }
        queryTokens = w.load(m, "query_tokens", 1, spec.queries(), qd);
        textEmbeddings = Blip2TextEmbeddings.load(w, m, config.qformer(), "embeddings");
        qformer = Blip2QFormerModel.load(w, m, config.qformer(), "qformer", true);
        visionProjection = Linear.load(w, m, "vision_projection", qd, spec.embedDim(), true);
        textProjection = Linear.load(w, m, "text_projection", qd, spec.embedDim(), true);
        itmHead = Linear.load(w, m, "itm_head", qd, 2, true);
        itgHead = new ItgHead(Linear.load(w, m, "train.itg_head.transform.dense", qd, qd, true),
                LayerNorm.load(w, m, "train.itg_head.transform.LayerNorm", qd, config.qformer().layerNormEps()),
                w.load(m, "train.itg_head.bias", spec.vocab()));
        itcTemperature = w.load(m, "train.itc_temperature", 1);
        languageProjection = Linear.load(w, m, "language_projection", qd, spec.tHidden(), true);
        if (config.text() instanceof T5Config c) {
            languageModel = null;
            t5 = T5ForConditionalGeneration.load(w, m, c, "language_model");
        } else {
            languageModel = OptForCausalLM.load(w, m, (OptConfig) config.text(), "language_model");
            t5 = null;
        }
    }

    static SceneModel load(SceneModelSpec spec, Path dir, NDManager engineManager) throws IOException {
        return new SceneModel(spec, dir, engineManager);
    }

    /** The arrays whose checkpoint names (first part) match. */
    List<LoadedTensor> parameters(Predicate<String> names) {
        List<LoadedTensor> out = new ArrayList<>();
        for (LoadedTensor t : weights.recorded()) {
            if (names.test(t.parts().get(0).name())) {
                out.add(t);
            }
        }
        return out;
    }

    /** Writes every tensor, in checkpoint layout, with the config and tokenizer files it was loaded with, into {@code out}. */
    void save(Path out) throws IOException {
        Files.createDirectories(out);
        SafetensorsWriter w = new SafetensorsWriter();
        for (Map.Entry<String, LoadedTensor.Tensor> e : LoadedTensor.checkpoint(weights.recorded()).entrySet()) {
            w.put(e.getKey(), e.getValue().values(), e.getValue().shape());
        }
        Path tmp = out.resolve("model.safetensors.tmp");
        w.write(tmp);
        Files.move(tmp, out.resolve("model.safetensors"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        if (!dir.toAbsolutePath().equals(out.toAbsolutePath())) {
            for (String f : new String[] {"config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"}) {
                Files.copy(dir.resolve(f), out.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }

    @Override
    public void close() {
        manager.close();
        weights.close();
    }
}
