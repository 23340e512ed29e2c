package io.blip2stream.bench;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.weights.DirectBuffers;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 21, item 2 (loading): a BF16 checkpoint loads on either engine without the JVM keeping its float32 copy in
 * direct buffers or its file mapped. PyTorch used to compute on the direct buffers it was handed (the whole model in
 * the JVM's direct memory: {@code OutOfMemoryError} for blip2-opt-2.7b at -Xmx6g), and both engines left every
 * tensor's staging buffer and mapping to the garbage collector (22 GB peak RSS for that model on TensorFlow). What
 * stays is what inference reads in Java: the embedding tables, mapped as stored (their rows converted as they are
 * read). The model still generates the same ids on both engines.
 */
class CheckpointMemoryTest {
    @TempDir
    Path dir;

    static BufferPoolMXBean pool(String name) {
        return ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream().filter(p -> p.getName().equals(name))
                .findFirst().orElseThrow();
    }

    @Test
    void aBf16CheckpointLoadsWithoutKeepingItsStagingOrItsMapping() throws Exception {
        assertTrue(DirectBuffers.releases(), "sun.misc.Unsafe.invokeCleaner is reachable on this JVM");
        SyntheticCheckpoint.Size size = SyntheticCheckpoint.Size.TINY;
        long params = SyntheticCheckpoint.write(dir, size, "BF16", 11);
        long float32Bytes = 4 * params;
        // what inference keeps on purpose: the embedding tables (float32 bytes)
        var counts = SyntheticCheckpoint.parameterCounts(size);
        long tables = 0;
        try (var w = io.blip2stream.model.weights.Weights.open(dir)) {
            for (String name : w.names()) {
                if (name.matches(".*(embed_tokens|embed_positions|word_embeddings|position_embeddings|shared|relative_attention_bias).*")) {
                    long n = 1;
                    for (long d : w.shape(name)) {
                        n *= d;
                    }
                    tables += 4 * n;
                }
            }
        }
        byte[] image = Fixtures.image("blip2-opt-tiny", 2);
        int[][] ids = new int[2][];
        int i = 0;
        for (Engines.Kind k : Engines.Kind.values()) {
            long direct0 = pool("direct").getMemoryUsed();
            long mapped0 = pool("mapped").getMemoryUsed();
            try (NDManager m = Engines.newManager(k); Blip2Model model = Blip2Model.load(dir, m)) {
                long direct = pool("direct").getMemoryUsed() - direct0;
                long mapped = pool("mapped").getMemoryUsed() - mapped0;
                assertTrue(direct <= float32Bytes / 20, k + ": " + direct + " bytes of direct buffers stay after loading "
                        + float32Bytes + " bytes of float32 weights (" + counts + ")");
                // the embedding tables stay mapped as stored (BF16: half their float32 size), read row by row
                assertTrue(mapped <= tables / 2 + float32Bytes / 20, k + ": " + mapped + " bytes stay mapped; the tables are " + tables / 2);
                var f = model.encodeImages(List.of(model.preprocess(image)), false);
                var req = new GenerationRequest(model.visualPrompt(f, 0), "a photo of");
                ids[i++] = model.generation().generate(List.of(req), GenerationParams.greedy(8)).get(0).tokenIds();
            }
        }
        assertArrayEquals(ids[0], ids[1], "TensorFlow and PyTorch generate the same ids");
    }
}
