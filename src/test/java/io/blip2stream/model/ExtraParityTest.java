package io.blip2stream.model;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Parity on the extra fixtures made by src/test/python/make_extra_fixtures.py with transformers 5.17:
 * project_in/out with post-LN OPT layers and F16 weights, a JPEG, grayscale and palette images, patch 16 without
 * qkv bias; BF16 weights in shards with an EOS the model produces; repetition penalty, min_new_tokens, length
 * penalty and early stopping; a left-padded batch; a FlanT5 whose attention is narrower than d_model, with 16
 * buckets over a distance of 20 under prompts longer than that, and an EOS it produces.
 */
class ExtraParityTest {

    static Stream<Arguments> fixturesAndEngines() {
        List<Arguments> out = new ArrayList<>();
        for (String f : List.of("extra/blip2-opt-projio-postln-f16", "extra/blip2-opt-bf16-sharded-eos",
                "extra/blip2-flant5-variant-eos")) {
            for (Engines.Kind k : Engines.Kind.values()) {
                out.add(Arguments.of(f, k));
            }
        }
        return out.stream();
    }

    static GenerationParams params(JsonNode kw) {
        GenerationParams.Builder b = GenerationParams.builder();
        for (Iterator<Map.Entry<String, JsonNode>> it = kw.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode v = e.getValue();
            switch (e.getKey()) {
                case "max_new_tokens" -> b.maxNewTokens(v.asInt());
                case "min_new_tokens" -> b.minNewTokens(v.asInt());
                case "num_beams" -> b.numBeams(v.asInt());
                case "repetition_penalty" -> b.repetitionPenalty(v.asDouble());
                case "length_penalty" -> b.lengthPenalty(v.asDouble());
                case "early_stopping" -> b.earlyStopping(v.isBoolean()
                        ? (v.asBoolean() ? GenerationParams.EarlyStopping.TRUE : GenerationParams.EarlyStopping.FALSE)
                        : GenerationParams.EarlyStopping.NEVER);
                default -> throw new IllegalArgumentException("unknown generate kwarg " + e.getKey());
            }
        }
        return b.build();
    }

    static String prompt(JsonNode c) {
        return c.get("prompt").isNull() ? null : c.get("prompt").asText();
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("fixturesAndEngines")
    void matchesTransformers(String fixture, Engines.Kind engine) throws Exception {
        try (NDManager manager = Engines.newManager(engine);
             Blip2Model model = Blip2Model.load(Fixtures.model(fixture), manager)) {
            for (JsonNode c : Fixtures.cases(fixture)) {
                String n = c.get("name").asText();
                float[] px = model.preprocess(Fixtures.file(fixture, c.get("image").asText()));
                Blip2Model.ImageFeatures f = model.encodeImages(List.of(px), true);
                if (n.endsWith("_p0")) {
                    double d = Fixtures.maxAbsDiff(Fixtures.tensor(fixture, n + ".pixel_values").values(), px);
                    assertTrue(d <= 5e-7, n + " pixel_values differ by " + d);
                    GenerationParityTest.assertClose(n + ".vision_last_hidden_state",
                            Fixtures.tensor(fixture, n + ".vision_last_hidden_state").values(), f.visionLastHiddenState());
                    GenerationParityTest.assertClose(n + ".qformer_last_hidden_state",
                            Fixtures.tensor(fixture, n + ".qformer_last_hidden_state").values(), f.qformerLastHiddenState());
                    GenerationParityTest.assertClose(n + ".language_projection",
                            Fixtures.tensor(fixture, n + ".language_projection").values(), f.languageProjection());
                }
                assertArrayEquals(Fixtures.ints(c.get("text_input_ids")), model.generation().promptIds(prompt(c)), n + " text ids");
                GenerationRequest req = new GenerationRequest(model.visualPrompt(f, 0), prompt(c));
                float[][] logits = model.generation().promptLogits(req);
                float[] flat = new float[logits.length * logits[0].length];
                for (int i = 0; i < logits.length; i++) {
                    System.arraycopy(logits[i], 0, flat, i * logits[0].length, logits[0].length);
                }
                GenerationParityTest.assertClose(n + ".logits", Fixtures.tensor(fixture, n + ".logits").values(), flat);
                for (Iterator<Map.Entry<String, JsonNode>> it = c.get("generate").fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> g = it.next();
                    var r = model.generation().generate(List.of(req), params(g.getValue().get("kwargs"))).get(0);
                    assertArrayEquals(newTokens(model, g.getValue().get("new_tokens")), r.tokenIds(), n + " " + g.getKey());
                }
            }
            if (fixture.endsWith("bf16-sharded-eos")) {
                batchMatchesTransformersBatch(fixture, model);
            }
        }
    }

    /** transformers' new tokens without T5's decoder start token, which token_ids leave out. */
    static int[] newTokens(Blip2Model model, JsonNode ids) {
        int[] all = Fixtures.ints(ids);
        return model.config().text().isEncoderDecoder() ? java.util.Arrays.copyOfRange(all, 1, all.length) : all;
    }

    /**
     * transformers' own left-padded batch of the three images (prompts of different lengths). Only on this
     * fixture: on the post-LN one transformers' batch differs from its own single runs, while ours equals them.
     */
    private void batchMatchesTransformersBatch(String fixture, Blip2Model model) {
        for (JsonNode b : Fixtures.expected(fixture).get("batch")) {
            List<float[]> pixels = new ArrayList<>();
            for (JsonNode img : b.get("images")) {
                pixels.add(model.preprocess(Fixtures.file(fixture, img.asText())));
            }
            Blip2Model.ImageFeatures f = model.encodeImages(pixels, false);
            List<GenerationRequest> reqs = new ArrayList<>();
            for (int i = 0; i < pixels.size(); i++) {
                JsonNode p = b.get("prompts").get(i);
                reqs.add(new GenerationRequest(model.visualPrompt(f, i), p.isNull() ? null : p.asText()));
            }
            var out = model.generation().generate(reqs, params(b.get("kwargs")));
            for (int i = 0; i < reqs.size(); i++) {
                assertArrayEquals(Fixtures.ints(b.get("new_tokens").get(i)), out.get(i).tokenIds(), "batch row " + i + " " + b.get("kwargs"));
            }
        }
    }
}
