package io.blip2stream.train;

import io.blip2stream.model.weights.SafetensorsWriter;
import io.blip2stream.model.weights.Weights;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Predicate;

/**
 * Writes a training state out as Hugging Face checkpoints: {@code Blip2ForConditionalGeneration} (vision, queries,
 * the Q-Former's query path, projection, OPT or T5) and {@code Blip2ForImageTextRetrieval} (vision, queries, text
 * embeddings, the whole Q-Former, ITC projections, ITM head), each with config.json, model.safetensors,
 * tokenizer.json and preprocessor_config.json. Training-only tensors stay behind.
 */
final class Export {
    private Export() {}

    static final Predicate<String> TEXT_FEED_FORWARD = n -> n.matches("qformer\\.encoder\\.layer\\.\\d+\\.(intermediate|output)\\..*");

    static final Predicate<String> GENERATION = n -> n.startsWith("vision_model.") || n.equals("query_tokens")
            || (n.startsWith("qformer.") && !TEXT_FEED_FORWARD.test(n)) || n.startsWith("language_projection.")
            || n.startsWith("language_model.");

    static final Predicate<String> RETRIEVAL = n -> n.startsWith("vision_model.") || n.equals("query_tokens")
            || n.startsWith("embeddings.") || n.startsWith("qformer.") || n.startsWith("vision_projection.")
            || n.startsWith("text_projection.") || n.startsWith("itm_head.");

    static void generation(SceneModelSpec spec, Path state, Path out) throws IOException {
        write(state, out, GENERATION);
        spec.writeConfig(out, SceneModelSpec.Variant.GENERATION);
        SceneTokenizer.write(out, spec.t5()); // T5's template puts </s> after the text
        spec.writePreprocessorConfig(out);
    }

    static void retrieval(SceneModelSpec spec, Path state, Path out) throws IOException {
        write(state, out, RETRIEVAL);
        spec.writeConfig(out, SceneModelSpec.Variant.RETRIEVAL);
        SceneTokenizer.write(out); // the Q-Former reads "</s> text": </s> is its [CLS]
        spec.writePreprocessorConfig(out);
    }

    private static void write(Path state, Path out, Predicate<String> keep) throws IOException {
        Files.createDirectories(out);
        SafetensorsWriter w = new SafetensorsWriter();
        try (Weights weights = Weights.open(state)) {
            for (String name : weights.names()) {
                if (keep.test(name)) {
                    long[] shape = weights.shape(name);
                    FloatBuffer b = weights.floats(name, shape);
                    float[] v = new float[b.remaining()];
                    b.get(v);
                    w.put(name, v, shape);
                }
            }
        }
        w.write(out.resolve("model.safetensors"));
    }
}
