package io.blip2stream.model;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** FlanT5: batching over encoder prompts of different lengths, the decoder's KV cache, the VQA template. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class FlanT5GenerationTest {
    static final String FIXTURE = "blip2-flant5-tiny";
    NDManager manager;
    Blip2Model model;
    List<JsonNode> cases;
    final List<GenerationRequest> requests = new ArrayList<>();

    @BeforeAll
    void load() throws Exception {
        manager = Engines.newManager(Engines.Kind.TENSORFLOW);
        model = Blip2Model.load(Fixtures.model(FIXTURE), manager);
        cases = Fixtures.cases(FIXTURE);
        List<float[]> pixels = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            pixels.add(model.preprocess(Fixtures.image(FIXTURE, i)));
        }
        Blip2Model.ImageFeatures f = model.encodeImages(pixels, false);
        for (JsonNode c : cases) {
            int image = Integer.parseInt(c.get("name").asText().substring(3, 4));
            requests.add(new GenerationRequest(model.visualPrompt(f, image), c.get("prompt").asText()));
        }
    }

    @AfterAll
    void close() {
        model.close();
        manager.close();
    }

    static int[] withoutStart(JsonNode ids) {
        int[] all = Fixtures.ints(ids);
        return Arrays.copyOfRange(all, 1, all.length);
    }

    @Test
    void aBatchOfPromptsOfDifferentLengthsGivesTheFixtureIds() {
        var greedy = model.generation().generate(requests, GenerationParams.greedy(12));
        var beam = model.generation().generate(requests, GenerationParams.builder().maxNewTokens(8).numBeams(3).build());
        for (int i = 0; i < cases.size(); i++) {
            String n = cases.get(i).get("name").asText();
            assertArrayEquals(withoutStart(cases.get(i).get("greedy_new_tokens")), greedy.get(i).tokenIds(), n + " greedy in a batch");
            assertArrayEquals(withoutStart(cases.get(i).get("beam3_new_tokens")), beam.get(i).tokenIds(), n + " beam in a batch");
        }
    }

    @Test
    void decoderKvCacheEqualsFullRecomputation() {
        GenerationRequest req = requests.get(1);
        int steps = 8;
        int[] generated = new int[steps];
        try (DecoderSession s = model.generation().startSession(List.of(req), steps)) {
            float[] logits = s.promptLogits()[0];
            for (int k = 0; k < steps; k++) {
                float[][] full = model.generation().promptLogits(req, Arrays.copyOf(generated, k));
                assertEquals(k + 1, full.length, "one row per decoder position");
                double diff = Fixtures.maxAbsDiff(full[k], logits);
                assertTrue(diff < 1e-4, "step " + k + ": cached and recomputed logits differ by " + diff);
                generated[k] = GenerationTest.argmax(logits);
                logits = s.step(new int[] {generated[k]})[0];
            }
        }
    }

    @Test
    void vqaUsesTheShortAnswerTemplateAndCaptionsStartFromTheEmptyText() {
        assertEquals("Question: what color is the circle? Short answer:", model.generation().vqaPrompt("what color is the circle?"));
        assertArrayEquals(model.tokenizer().encode(""), model.generation().promptIds(null));
        assertEquals(1, model.generation().promptIds(null)[model.generation().promptIds(null).length - 1], "T5's template ends with </s>");
    }
}
