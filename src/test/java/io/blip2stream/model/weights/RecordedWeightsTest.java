package io.blip2stream.model.weights;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.llm.opt.OptForCausalLM;
import io.blip2stream.model.qformer.Blip2QFormerModel;
import io.blip2stream.model.qformer.Blip2TextEmbeddings;
import io.blip2stream.model.vision.Blip2VisionModel;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training finds a model's parameters by recording what the inference code loads, and writes them back through
 * {@link LoadedTensor#toCheckpoint}: that must give every tensor back as the checkpoint holds it, through the
 * transposes done at load and OPT's fused, pre-scaled q/k/v.
 */
class RecordedWeightsTest {

    @ParameterizedTest
    @EnumSource(Engines.Kind.class)
    void everyLoadedTensorComesBackAsTheCheckpointHoldsIt(Engines.Kind engine) throws Exception {
        check(engine, Fixtures.model("blip2-opt-tiny"), false);
        check(engine, Fixtures.model("blip2-itm-tiny"), true);
    }

    private static void check(Engines.Kind engine, Path dir, boolean retrieval) throws Exception {
        Blip2Config c = Blip2Config.load(dir);
        try (NDManager m = Engines.newManager(engine); Weights w = Weights.open(dir).recording()) {
            Blip2VisionModel.load(w, m, c.vision(), "vision_model");
            w.load(m, "query_tokens", 1, c.numQueryTokens(), c.qformer().hiddenSize());
            Blip2QFormerModel.load(w, m, c.qformer(), "qformer", retrieval);
            if (retrieval) {
                Blip2TextEmbeddings.load(w, m, c.qformer(), "embeddings");
            } else {
                OptForCausalLM.load(w, m, (OptConfig) c.text(), "language_model");
            }
            List<LoadedTensor> recorded = w.recorded();
            Map<String, LoadedTensor.Tensor> back = LoadedTensor.checkpoint(recorded);
            assertTrue(recorded.stream().anyMatch(t -> t.parts().size() == 3) || retrieval, "OPT's q/k/v are fused");
            Set<String> names = new HashSet<>(back.keySet());
            for (String name : w.names()) {
                boolean skipped = name.startsWith("vision_projection") || name.startsWith("text_projection")
                        || name.startsWith("itm_head") || name.startsWith("language_projection") || name.endsWith("lm_head.weight");
                if (!skipped) {
                    assertTrue(names.remove(name), "not recorded: " + name);
                }
            }
            assertTrue(names.isEmpty(), "recorded tensors that are not in the checkpoint: " + names);
            for (var e : back.entrySet()) {
                long[] shape = w.shape(e.getKey());
                assertArrayEquals(shape, e.getValue().shape(), e.getKey());
                FloatBuffer fb = w.floats(e.getKey(), shape);
                float[] expected = new float[fb.remaining()];
                fb.get(expected);
                float[] actual = e.getValue().values();
                assertEquals(expected.length, actual.length, e.getKey());
                for (int i = 0; i < expected.length; i++) {
                    assertEquals(expected[i], actual[i], 1e-6f * Math.max(1f, Math.abs(expected[i])),
                            e.getKey() + "[" + i + "] of " + Arrays.toString(shape));
                }
            }
        }
    }
}
