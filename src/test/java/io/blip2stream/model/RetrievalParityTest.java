package io.blip2stream.model;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.Engines;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Parity with transformers 5.17's Blip2ForImageTextRetrieval on blip2-itm-tiny: ITM, ITC and the embeddings. */
class RetrievalParityTest {
    static final String FIXTURE = "blip2-itm-tiny";

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> fixturesAndEngines() {
        List<org.junit.jupiter.params.provider.Arguments> out = new ArrayList<>();
        for (String f : List.of(FIXTURE, "extra/blip2-itm-variant")) {
            for (Engines.Kind k : Engines.Kind.values()) {
                out.add(org.junit.jupiter.params.provider.Arguments.of(f, k));
            }
        }
        return out.stream();
    }

    /** The shared fixture, and a variant with 6 queries, cross-attention in every layer and texts of 8 to 15 tokens. */
    @ParameterizedTest(name = "{0} on {1}")
    @org.junit.jupiter.params.provider.MethodSource("fixturesAndEngines")
    void matchAndEmbeddingsMatchTransformers(String FIXTURE, Engines.Kind engine) throws Exception {
        JsonNode expected = Fixtures.expected(FIXTURE);
        List<String> texts = new ArrayList<>();
        expected.get("texts").forEach(t -> texts.add(t.asText()));
        try (NDManager m = Engines.newManager(engine); Blip2Model model = Blip2Model.load(Fixtures.model(FIXTURE), m)) {
            assertTrue(model.canMatch());
            assertFalse(model.canGenerate());
            for (int image = 0; image < 2; image++) {
                float[] px = model.preprocess(Fixtures.image(FIXTURE, image));
                assertTrue(Fixtures.maxAbsDiff(Fixtures.tensor(FIXTURE, "img" + image + ".pixel_values").values(), px) <= 5e-7);
                List<Blip2Retrieval.MatchResult> results = model.retrieval().match(px, texts);
                float[] imageEmbeds = model.encodeImages(List.of(px), false).imageEmbeds();
                float[] textEmbeds = model.retrieval().embedTexts(texts);
                int p = model.retrieval().embeddingSize();
                for (JsonNode c : expected.get("cases")) {
                    if (c.get("image").asInt() != image) {
                        continue;
                    }
                    int j = texts.indexOf(c.get("text").asText());
                    String n = "img" + image + "_t" + j;
                    assertArrayEquals(Fixtures.ints(c.get("input_ids")), model.tokenizer().encode(texts.get(j)), n + " input_ids");
                    Blip2Retrieval.MatchResult r = results.get(j);
                    assertEquals(texts.get(j), r.text());
                    double itm0 = Math.abs(r.itmLogits()[0] - c.get("itm_logits").get(0).asDouble());
                    double itm1 = Math.abs(r.itmLogits()[1] - c.get("itm_logits").get(1).asDouble());
                    double prob = Math.abs(r.itmProbability() - c.get("itm_match_probability").asDouble());
                    double itc = Math.abs(r.itcScore() - c.get("itc_score").asDouble());
                    System.out.printf("%s itm logits diff %.2e %.2e, probability diff %.2e, itc diff %.2e%n", n, itm0, itm1, prob, itc);
                    assertTrue(itm0 < 1e-4 && itm1 < 1e-4, n + " itm logits");
                    assertTrue(prob < 1e-4, n + " itm probability off by " + prob);
                    assertTrue(itc < 1e-4, n + " itc score off by " + itc);
                    GenerationParityTest.assertClose(n + ".image_embeds", Fixtures.tensor(FIXTURE, n + ".image_embeds").values(), imageEmbeds);
                    float[] te = java.util.Arrays.copyOfRange(textEmbeds, j * p, (j + 1) * p);
                    GenerationParityTest.assertClose(n + ".text_embeds", Fixtures.tensor(FIXTURE, n + ".text_embeds").values(), te);
                }
                // ITC ranks the image's texts in transformers' order
                final int img = image;
                List<JsonNode> cases = new ArrayList<>();
                expected.get("cases").forEach(c -> {
                    if (c.get("image").asInt() == img) {
                        cases.add(c);
                    }
                });
                List<String> want = cases.stream().sorted(Comparator.comparingDouble((JsonNode c) -> -c.get("itc_score").asDouble()))
                        .map(c -> c.get("text").asText()).toList();
                List<String> got = IntStream.range(0, results.size()).boxed()
                        .sorted(Comparator.comparingDouble(i -> -results.get(i).itcScore())).map(texts::get).toList();
                assertEquals(want, got, "ITC ranking of image " + image);
            }
            assertThrows(IllegalStateException.class, () -> model.generation().vqaPrompt("what?"));
        }
    }

    @ParameterizedTest
    @EnumSource(Engines.Kind.class)
    void textsOfDifferentLengthsScoreAsAlone(Engines.Kind engine) throws Exception {
        List<String> texts = List.of("a red circle", "two cats laying on a couch in the middle of the picture", "blue");
        try (NDManager m = Engines.newManager(engine); Blip2Model model = Blip2Model.load(Fixtures.model(FIXTURE), m)) {
            float[] px = model.preprocess(Fixtures.image(FIXTURE, 1));
            List<Blip2Retrieval.MatchResult> together = model.retrieval().match(px, texts);
            float[] embeds = model.retrieval().embedTexts(texts);
            int p = model.retrieval().embeddingSize();
            for (int i = 0; i < texts.size(); i++) {
                Blip2Retrieval.MatchResult alone = model.retrieval().match(px, List.of(texts.get(i))).get(0);
                assertEquals(alone.itmProbability(), together.get(i).itmProbability(), 1e-5, texts.get(i));
                assertEquals(alone.itcScore(), together.get(i).itcScore(), 1e-5, texts.get(i));
                float[] one = model.retrieval().embedTexts(List.of(texts.get(i)));
                assertTrue(Fixtures.maxAbsDiff(one, java.util.Arrays.copyOfRange(embeds, i * p, (i + 1) * p)) < 1e-5);
            }
        }
    }
}
