package io.blip2stream.model;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.generation.FinishReason;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.RowListener;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Batching, the KV cache and sampling on blip2-opt-tiny (TensorFlow, the default engine). */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GenerationTest {
    static final String FIXTURE = "blip2-opt-tiny";
    NDManager manager;
    Blip2Model model;
    List<JsonNode> cases;
    List<GenerationRequest> requests = new ArrayList<>();

    @BeforeAll
    void load() throws Exception {
        manager = Engines.newManager(Engines.Kind.TENSORFLOW);
        model = Blip2Model.load(Fixtures.model(FIXTURE), manager);
        cases = Fixtures.cases(FIXTURE);
        List<float[]> pixels = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            pixels.add(model.preprocess(Fixtures.image(FIXTURE, i)));
        }
        Blip2Model.ImageFeatures f = model.encodeImages(pixels, false); // the three images in one batch
        for (JsonNode c : cases) {
            int image = Integer.parseInt(c.get("name").asText().substring(3, 4));
            String prompt = c.get("prompt").isNull() ? null : c.get("prompt").asText();
            requests.add(new GenerationRequest(model.visualPrompt(f, image), prompt));
        }
    }

    @AfterAll
    void close() {
        model.close();
        manager.close();
    }

    /** The warm-up a worker runs before it is ready leaves no trace: transformers' ids before and after it. */
    @Test
    void aWarmUpChangesNoResult() {
        var c = cases.get(0);
        int[] want = Fixtures.ints(c.get("greedy_new_tokens"));
        Blip2Model.ImageFeatures f = model.encodeImages(List.of(model.preprocess(Fixtures.image(FIXTURE, 0))), false);
        var req = new GenerationRequest(model.visualPrompt(f, 0), c.get("prompt").isNull() ? null : c.get("prompt").asText());
        int[] before = model.generation().generate(List.of(req), GenerationParams.greedy(want.length)).get(0).tokenIds();
        assertTrue(model.warmUp() >= 0);
        int[] after = model.generation().generate(List.of(req), GenerationParams.greedy(want.length)).get(0).tokenIds();
        assertArrayEquals(want, before);
        assertArrayEquals(before, after);
    }

    @Test
    void batchedImageEncodingEqualsOneAtATime() {
        Blip2Model.ImageFeatures one = model.encodeImages(List.of(model.preprocess(Fixtures.image(FIXTURE, 2))), false);
        float[] batched = requests.get(4).visualPrompt(); // img2_p0
        assertTrue(Fixtures.maxAbsDiff(model.visualPrompt(one, 0), batched) < 1e-5);
    }

    @Test
    void aBatchOfPromptsOfDifferentLengthsGivesTheIdsOfOneAtATime() {
        // six rows, prompts of 1 and 11 tokens, left-padded to one length: greedy and beam
        var greedy = model.generation().generate(requests, GenerationParams.greedy(12));
        var beam = model.generation().generate(requests, GenerationParams.builder().maxNewTokens(8).numBeams(3).build());
        for (int i = 0; i < cases.size(); i++) {
            String n = cases.get(i).get("name").asText();
            assertArrayEquals(Fixtures.ints(cases.get(i).get("greedy_new_tokens")), greedy.get(i).tokenIds(), n + " greedy in a batch");
            assertArrayEquals(Fixtures.ints(cases.get(i).get("beam3_new_tokens")), beam.get(i).tokenIds(), n + " beam in a batch");
            var alone = model.generation().generate(List.of(requests.get(i)), GenerationParams.greedy(12)).get(0);
            assertArrayEquals(alone.tokenIds(), greedy.get(i).tokenIds(), n);
            assertEquals(alone.text(), greedy.get(i).text(), n);
        }
    }

    @Test
    void withoutPackedWeightsTheMatMulLayerGivesTheSameIds() throws Exception {
        System.setProperty("blip2.tf.packed_weights", "false");
        try (NDManager m = Engines.newManager(Engines.Kind.TENSORFLOW); Blip2Model plain = Blip2Model.load(Fixtures.model(FIXTURE), m)) {
            assertEquals("tensorflow-function", plain.generation().decodePath(), "BLIP2_TF_PACKED_WEIGHTS=false: the projections as MatMul");
            var greedy = plain.generation().generate(requests, GenerationParams.greedy(12));
            for (int i = 0; i < cases.size(); i++) {
                assertArrayEquals(Fixtures.ints(cases.get(i).get("greedy_new_tokens")), greedy.get(i).tokenIds(),
                        cases.get(i).get("name").asText());
            }
        } finally {
            System.clearProperty("blip2.tf.packed_weights");
        }
    }

    @Test
    void kvCacheDecodingEqualsFullRecomputation() {
        assertEquals("tensorflow-function-packed", model.generation().decodePath(),
                "on TensorFlow a decode step runs each layer as one function, its projections with packed weights");
        // two rows decoded together, prompts of 1 and 11 tokens (one row left-padded), against each alone recomputed;
        // long enough for the cache's open block to fill and merge twice
        List<GenerationRequest> pair = List.of(requests.get(0), requests.get(3));
        int pairSteps = 2 * io.blip2stream.model.llm.KvCache.BLOCK + 4;
        int[][] pairGenerated = new int[2][pairSteps];
        try (DecoderSession s = model.generation().startSession(pair, pairSteps)) {
            float[][] logits = s.promptLogits();
            for (int k = 0; k < pairSteps; k++) {
                for (int r = 0; r < 2; r++) {
                    float[][] full = model.generation().promptLogits(pair.get(r), java.util.Arrays.copyOf(pairGenerated[r], k));
                    double diff = Fixtures.maxAbsDiff(full[full.length - 1], logits[r]);
                    assertTrue(diff < 1e-4, "row " + r + " step " + k + ": batched and recomputed logits differ by " + diff);
                    pairGenerated[r][k] = argmax(logits[r]);
                }
                logits = s.step(new int[] {pairGenerated[0][k], pairGenerated[1][k]});
            }
        }
        for (GenerationRequest req : pair) {
            int steps = io.blip2stream.model.llm.KvCache.BLOCK + 3;
            int[] generated = new int[steps];
            try (DecoderSession s = model.generation().startSession(List.of(req), steps)) {
                float[] logits = s.promptLogits()[0];
                for (int k = 0; k < steps; k++) {
                    int[] prefix = java.util.Arrays.copyOf(generated, k);
                    float[][] full = model.generation().promptLogits(req, prefix);
                    float[] last = full[full.length - 1];
                    double diff = Fixtures.maxAbsDiff(last, logits);
                    assertTrue(diff < 1e-4, "step " + k + ": cached and recomputed logits differ by " + diff);
                    generated[k] = argmax(logits);
                    logits = s.step(new int[] {generated[k]})[0];
                }
            }
        }
    }

    @Test
    void seededSamplingIsReproducibleAndBatchIndependent() {
        GenerationParams p = GenerationParams.builder().maxNewTokens(12).doSample(true).temperature(1.3).topK(40)
                .topP(0.95).seed(42L).build();
        var a = model.generation().generate(requests.subList(0, 2), p);
        var b = model.generation().generate(requests.subList(0, 2), p);
        var alone = model.generation().generate(requests.subList(1, 2), p);
        assertArrayEquals(a.get(0).tokenIds(), b.get(0).tokenIds());
        assertArrayEquals(a.get(1).tokenIds(), b.get(1).tokenIds());
        assertArrayEquals(alone.get(0).tokenIds(), a.get(1).tokenIds(), "a row samples the same in a batch and alone");
        List<int[]> seen = new ArrayList<>();
        for (long seed = 1; seed <= 5; seed++) {
            seen.add(model.generation().generate(requests.subList(0, 1), p.toBuilder().seed(seed).build())
                    .get(0).tokenIds());
        }
        boolean differ = false;
        for (int[] s : seen) {
            differ |= !java.util.Arrays.equals(s, seen.get(0));
        }
        assertTrue(differ, "different seeds give different samples");
        // top-k 1 leaves only the greedy choice
        var topOne = model.generation().generate(requests.subList(0, 1), p.toBuilder().topK(1).build());
        assertArrayEquals(Fixtures.ints(cases.get(0).get("greedy_new_tokens")), topOne.get(0).tokenIds());
    }

    /**
     * Several samples of one prompt (CapFilt's ten captions of an image): with one seed for the batch every row samples
     * alike, so {@code generateEach} gives each row its own parameters, and each row then samples as it would alone.
     */
    @Test
    void eachRowSamplesWithItsOwnParameters() {
        GenerationParams p = GenerationParams.builder().maxNewTokens(12).doSample(true).temperature(1.3).topK(40)
                .topP(0.95).seed(7L).build();
        List<GenerationRequest> same = java.util.Collections.nCopies(6, requests.get(0));
        var oneSeed = model.generation().generate(same, p);
        for (var r : oneSeed) {
            assertArrayEquals(oneSeed.get(0).tokenIds(), r.tokenIds(), "one seed: one sample, six times");
        }
        List<GenerationParams> seeds = new ArrayList<>();
        for (long s = 0; s < 6; s++) {
            seeds.add(p.toBuilder().seed(100 + s).maxNewTokens(s == 5 ? 3 : 12).build());
        }
        var each = model.generation().generateEach(same, seeds);
        assertEquals(6, each.size());
        assertTrue(each.stream().map(r -> java.util.Arrays.toString(r.tokenIds())).distinct().count() > 1,
                "a seed each: the samples differ");
        for (int i = 0; i < 6; i++) {
            var alone = model.generation().generate(List.of(same.get(i)), seeds.get(i)).get(0);
            assertArrayEquals(alone.tokenIds(), each.get(i).tokenIds(), "row " + i + " samples as it does alone");
        }
        assertTrue(each.get(5).tokenIds().length <= 3, "a row's own length");
        assertThrows(IllegalArgumentException.class, () -> model.generation().generateEach(same, seeds.subList(0, 5)));
        assertThrows(IllegalArgumentException.class, () -> model.generation().generateEach(same.subList(0, 1),
                List.of(p.toBuilder().doSample(false).numBeams(2).build())));
    }

    @Test
    void tokensStreamInOrderWithTheirText() {
        List<Integer> ids = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        var r = model.generation().generate(requests.subList(1, 2), GenerationParams.greedy(12), List.<RowListener>of((index, tokenId, piece) -> {
            assertEquals(ids.size(), index);
            ids.add(tokenId);
            text.append(piece);
        })).get(0);
        assertArrayEquals(r.tokenIds(), ids.stream().mapToInt(Integer::intValue).toArray());
        assertTrue(r.text().startsWith(text.toString()), "streamed pieces are a prefix of the final text");
        assertEquals(FinishReason.LENGTH, r.finishReason());
    }

    @Test
    void cancellingARowStopsItAndNoOther() {
        int[] seen = new int[1]; // tokens of both rows
        RowListener counting = (index, tokenId, text) -> seen[0]++;
        var cancelled = model.generation().generate(requests.subList(0, 2), GenerationParams.greedy(12), List.of(new RowListener() {
            @Override
            public void onToken(int index, int tokenId, String text) {
                seen[0]++;
            }

            @Override
            public boolean isCancelled() {
                return seen[0] >= 3;
            }
        }, counting));
        assertEquals(FinishReason.CANCELLED, cancelled.get(0).finishReason());
        assertTrue(cancelled.get(0).tokenIds().length <= 3, "stops within a step of the cancel");
        assertArrayEquals(Fixtures.ints(cases.get(1).get("greedy_new_tokens")), cancelled.get(1).tokenIds(),
                "the other row goes on unchanged");
        assertNotEquals(FinishReason.CANCELLED, cancelled.get(1).finishReason());
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }
}
