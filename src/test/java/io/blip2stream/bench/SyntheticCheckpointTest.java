package io.blip2stream.bench;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A synthetic BF16 checkpoint (no image token: the legacy layout that prepends the queries) loads, and both
 * engines compute the same thing on it.
 */
class SyntheticCheckpointTest {
    @TempDir
    Path dir;

    @Test
    void bothEnginesAgreeOnASyntheticCheckpoint() throws Exception {
        long params = SyntheticCheckpoint.write(dir, SyntheticCheckpoint.Size.TINY, "BF16", 7);
        assertTrue(params > 100_000, "parameters: " + params);
        assertTrue(Files.exists(dir.resolve("model.safetensors.index.json")));
        byte[] image = Fixtures.image("blip2-opt-tiny", 2);
        int[][] ids = new int[2][];
        float[][] logits = new float[2][];
        int i = 0;
        for (Engines.Kind k : Engines.Kind.values()) {
            try (NDManager m = Engines.newManager(k); Blip2Model model = Blip2Model.load(dir, m)) {
                assertEquals(null, model.config().imageTokenIndex());
                var f = model.encodeImages(List.of(model.preprocess(image)), false);
                var req = new GenerationRequest(model.visualPrompt(f, 0), "a photo of");
                ids[i] = model.generation().generate(List.of(req), GenerationParams.greedy(8)).get(0).tokenIds();
                float[][] l = model.generation().promptLogits(req);
                logits[i] = l[l.length - 1];
                i++;
            }
        }
        assertArrayEquals(ids[0], ids[1], "TensorFlow and PyTorch generate the same ids");
        assertTrue(Fixtures.maxAbsDiff(logits[0], logits[1]) < Fixtures.tolerance(logits[0]));
    }
}
