package io.blip2stream.model;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.AfterParameterizedClassInvocation;
import org.junit.jupiter.params.BeforeParameterizedClassInvocation;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Parity with transformers 5.17 on each generation fixture (blip2-opt-tiny, blip2-flant5-tiny) on each engine: every
 * intermediate tensor, the prompt logits (T5: the first decoder step), greedy and beam ids.
 */
@ParameterizedClass(name = "{0} on {1}")
@MethodSource("fixturesAndEngines")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GenerationParityTest {
    @Parameter(0)
    String FIXTURE;
    @Parameter(1)
    Engines.Kind engine;

    NDManager manager;
    Blip2Model model;
    final Map<Integer, Blip2Model.ImageFeatures> features = new HashMap<>();

    static Stream<Arguments> fixturesAndEngines() {
        return Stream.of("blip2-opt-tiny", "blip2-flant5-tiny")
                .flatMap(f -> Stream.of(Engines.Kind.PYTORCH, Engines.Kind.TENSORFLOW).map(k -> Arguments.of(f, k)));
    }

    @BeforeParameterizedClassInvocation
    void load() throws Exception {
        features.clear();
        manager = Engines.newManager(engine);
        model = Blip2Model.load(Fixtures.model(FIXTURE), manager);
    }

    @AfterParameterizedClassInvocation
    void close() {
        model.close();
        manager.close();
    }

    Blip2Model.ImageFeatures features(int image) {
        return features.computeIfAbsent(image, i -> model.encodeImages(List.of(model.preprocess(Fixtures.image(FIXTURE, i))), true));
    }

    int imageOf(JsonNode c) {
        return Integer.parseInt(c.get("name").asText().substring(3, 4));
    }

    static void assertClose(String what, float[] expected, float[] actual) {
        double diff = Fixtures.maxAbsDiff(expected, actual);
        double tol = Fixtures.tolerance(expected);
        System.out.printf("%s max abs diff %.3g (tolerance %.3g)%n", what, diff, tol);
        assertTrue(diff < tol, what + ": max abs diff " + diff + " over tolerance " + tol);
    }

    @Test
    void pixelValuesMatchPillow() {
        for (JsonNode c : Fixtures.cases(FIXTURE)) {
            String n = c.get("name").asText();
            float[] px = model.preprocess(Fixtures.image(FIXTURE, imageOf(c)));
            double diff = Fixtures.maxAbsDiff(Fixtures.tensor(FIXTURE, n + ".pixel_values").values(), px);
            System.out.printf("%s.pixel_values max abs diff %.3g (tolerance 5e-7)%n", n, diff);
            assertTrue(diff <= 5e-7, n + " pixel_values differ by " + diff);
        }
    }

    @Test
    void imageSideMatches() {
        for (JsonNode c : Fixtures.cases(FIXTURE)) {
            String n = c.get("name").asText();
            Blip2Model.ImageFeatures f = features(imageOf(c));
            assertClose(n + ".vision_last_hidden_state", Fixtures.tensor(FIXTURE, n + ".vision_last_hidden_state").values(), f.visionLastHiddenState());
            assertClose(n + ".qformer_last_hidden_state", Fixtures.tensor(FIXTURE, n + ".qformer_last_hidden_state").values(), f.qformerLastHiddenState());
            assertClose(n + ".language_projection", Fixtures.tensor(FIXTURE, n + ".language_projection").values(), f.languageProjection());
        }
    }

    @Test
    void promptLogitsMatch() {
        for (JsonNode c : Fixtures.cases(FIXTURE)) {
            String n = c.get("name").asText();
            Blip2Model.ImageFeatures f = features(imageOf(c));
            String prompt = c.get("prompt").isNull() ? null : c.get("prompt").asText();
            assertArrayEquals(Fixtures.ints(c.get("text_input_ids")), model.generation().promptIds(prompt), n + " text ids");
            float[][] logits = model.generation().promptLogits(new GenerationRequest(model.visualPrompt(f, 0), prompt));
            int v = logits[0].length;
            float[] flat = new float[logits.length * v];
            for (int i = 0; i < logits.length; i++) {
                System.arraycopy(logits[i], 0, flat, i * v, v);
            }
            assertClose(n + ".logits", Fixtures.tensor(FIXTURE, n + ".logits").values(), flat);
        }
    }

    @Test
    void greedyIdsMatch() {
        for (JsonNode c : Fixtures.cases(FIXTURE)) {
            String n = c.get("name").asText();
            String prompt = c.get("prompt").isNull() ? null : c.get("prompt").asText();
            var r = model.generation().generate(List.of(new GenerationRequest(model.visualPrompt(features(imageOf(c)), 0), prompt)),
                    GenerationParams.greedy(12)).get(0);
            assertArrayEquals(newTokens(c.get("greedy_new_tokens")), r.tokenIds(), n + " greedy ids");
        }
    }

    @Test
    void beamIdsMatch() {
        for (JsonNode c : Fixtures.cases(FIXTURE)) {
            String n = c.get("name").asText();
            String prompt = c.get("prompt").isNull() ? null : c.get("prompt").asText();
            var r = model.generation().generate(List.of(new GenerationRequest(model.visualPrompt(features(imageOf(c)), 0), prompt)),
                    GenerationParams.builder().maxNewTokens(8).numBeams(3).build()).get(0);
            assertArrayEquals(newTokens(c.get("beam3_new_tokens")), r.tokenIds(), n + " beam ids");
        }
    }

    /** The fixture's new tokens without T5's decoder start token, which token_ids leave out. */
    int[] newTokens(JsonNode ids) {
        int[] all = Fixtures.ints(ids);
        if (model.config().text().isEncoderDecoder()) {
            int start = ((io.blip2stream.model.config.T5Config) model.config().text()).decoderStartTokenId();
            assertEquals(start, all[0], "transformers' T5 sequences begin with the decoder start token");
            return java.util.Arrays.copyOfRange(all, 1, all.length);
        }
        return all;
    }
}
