package io.blip2stream.model;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.FinishReason;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.model.generation.RowListener;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Continuous batching: rows that join a running batch between decode steps, with histories of other lengths and
 * parameters of their own, get the tokens they get alone (and transformers' tokens, for every greedy fixture
 * case); a short row that starts later finishes first.
 */
class ContinuousBatchTest {

    static Stream<Arguments> fixturesAndEngines() {
        List<Arguments> out = new ArrayList<>();
        for (String f : List.of("blip2-opt-tiny", "blip2-flant5-tiny", "extra/blip2-opt-projio-postln-f16",
                "extra/blip2-opt-bf16-sharded-eos", "extra/blip2-flant5-variant-eos")) {
            for (Engines.Kind k : Engines.Kind.values()) {
                out.add(Arguments.of(f, k));
            }
        }
        return out.stream();
    }

    /** One row to decode, with what transformers generated for it (null: no reference, compare with alone). */
    record Job(String name, GenerationRequest request, GenerationParams params, int[] expected) {}

    /** Every greedy (non-beam) generation of the fixture, plus two seeded sampling rows. */
    static List<Job> jobs(String fixture, Blip2Model model) {
        List<Job> jobs = new ArrayList<>();
        boolean extra = fixture.startsWith("extra/");
        for (JsonNode c : Fixtures.cases(fixture)) {
            String n = c.get("name").asText();
            byte[] image = extra ? Fixtures.file(fixture, c.get("image").asText())
                    : Fixtures.image(fixture, Integer.parseInt(n.substring(3, 4)));
            float[] prompt = model.visualPrompt(model.encodeImages(List.of(model.preprocess(image)), false), 0);
            var req = new GenerationRequest(prompt, ExtraParityTest.prompt(c));
            if (extra) {
                for (Iterator<Map.Entry<String, JsonNode>> it = c.get("generate").fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> g = it.next();
                    GenerationParams p = ExtraParityTest.params(g.getValue().get("kwargs"));
                    if (p.numBeams() == 1) {
                        jobs.add(new Job(n + " " + g.getKey(), req, p, ExtraParityTest.newTokens(model, g.getValue().get("new_tokens"))));
                    }
                }
            } else {
                jobs.add(new Job(n + " greedy", req, GenerationParams.greedy(12), ExtraParityTest.newTokens(model, c.get("greedy_new_tokens"))));
            }
        }
        GenerationRequest first = jobs.get(0).request();
        jobs.add(new Job("sampled", first, GenerationParams.builder().maxNewTokens(10).doSample(true).temperature(0.8).topK(20).seed(7L).build(), null));
        jobs.add(new Job("sampled top-p", jobs.get(1).request(),
                GenerationParams.builder().maxNewTokens(6).doSample(true).topP(0.9).seed(11L).build(), null));
        return jobs;
    }

    /** A row's handler that keeps its tokens and result, and the order in which rows finished. */
    static final class Collector implements RowListener {
        final String name;
        final List<String> finished;
        final List<Integer> tokens = new ArrayList<>();
        GenerationResult result;

        Collector(String name, List<String> finished) {
            this.name = name;
            this.finished = finished;
        }

        @Override
        public void onToken(int index, int tokenId, String text) {
            assertEquals(tokens.size(), index, name + " token index");
            tokens.add(tokenId);
        }

        @Override
        public void onFinish(GenerationResult r) {
            result = r;
            finished.add(name);
        }
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("fixturesAndEngines")
    void rowsJoiningBetweenStepsGetTheTokensTheyGetAlone(String fixture, Engines.Kind engine) throws Exception {
        try (NDManager manager = Engines.newManager(engine);
             Blip2Model model = Blip2Model.load(Fixtures.model(fixture), manager);
             ContinuousBatch batch = model.generation().newBatch()) {
            List<Job> jobs = jobs(fixture, model);
            List<String> finished = new ArrayList<>();
            List<Collector> collectors = new ArrayList<>();
            // rows join one, then two, then three at a time, a step or two apart: histories of every length meet
            int next = 0;
            int wave = 1;
            int steps = 0;
            while (next < jobs.size() || !batch.isEmpty()) {
                if (next < jobs.size() && steps % 2 == 0) {
                    int n = Math.min(wave++, jobs.size() - next);
                    List<GenerationRequest> reqs = new ArrayList<>();
                    List<GenerationParams> params = new ArrayList<>();
                    List<RowListener> handlers = new ArrayList<>();
                    for (Job j : jobs.subList(next, next + n)) {
                        Collector c = new Collector(j.name(), finished);
                        collectors.add(c);
                        reqs.add(j.request());
                        params.add(j.params());
                        handlers.add(c);
                    }
                    model.generation().admit(batch, reqs, params, handlers);
                    next += n;
                }
                batch.step();
                steps++;
            }
            assertEquals(jobs.size(), finished.size(), "every row finished");
            for (int i = 0; i < jobs.size(); i++) {
                Job j = jobs.get(i);
                Collector c = collectors.get(i);
                assertNotNull(c.result, j.name());
                var alone = model.generation().generate(List.of(j.request()), j.params()).get(0);
                assertArrayEquals(alone.tokenIds(), c.result.tokenIds(), j.name() + " joined a running batch");
                assertEquals(alone.text(), c.result.text(), j.name());
                assertArrayEquals(alone.tokenIds(), c.tokens.stream().mapToInt(Integer::intValue).toArray(), j.name() + " streamed");
                if (j.expected() != null) {
                    assertArrayEquals(j.expected(), c.result.tokenIds(), j.name() + " against transformers");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("fixturesAndEngines")
    void aShortRequestThatStartsLaterFinishesFirst(String fixture, Engines.Kind engine) throws Exception {
        try (NDManager manager = Engines.newManager(engine);
             Blip2Model model = Blip2Model.load(Fixtures.model(fixture), manager);
             ContinuousBatch batch = model.generation().newBatch()) {
            List<Job> jobs = jobs(fixture, model);
            // no EOS for either row: min_new_tokens keeps them going to their length
            GenerationParams longParams = GenerationParams.builder().maxNewTokens(30).minNewTokens(30).build();
            GenerationParams shortParams = GenerationParams.builder().maxNewTokens(3).minNewTokens(3).build();
            List<String> finished = new ArrayList<>();
            Collector longRow = new Collector("long", finished);
            Collector shortRow = new Collector("short", finished);
            model.generation().admit(batch, List.of(jobs.get(0).request()), List.of(longParams), List.of(longRow));
            for (int i = 0; i < 5; i++) {
                batch.step();
            }
            model.generation().admit(batch, List.of(jobs.get(jobs.size() - 3).request()), List.of(shortParams), List.of(shortRow));
            assertEquals(2, batch.size());
            assertEquals(1, shortRow.tokens.size(), "the first token comes with the prefill, before the next step");
            int stepsWhileShortRan = 0;
            while (shortRow.result == null) {
                batch.step();
                stepsWhileShortRan++;
            }
            assertEquals(List.of("short"), finished, "the later, shorter request finished first");
            assertEquals(2, stepsWhileShortRan);
            assertEquals(FinishReason.LENGTH, shortRow.result.finishReason());
            assertEquals(1, batch.size(), "the short row left the batch");
            while (!batch.isEmpty()) {
                batch.step();
            }
            assertEquals(List.of("short", "long"), finished);
            assertEquals(30, longRow.result.tokenIds().length);
            var alone = model.generation().generate(List.of(jobs.get(0).request()), longParams).get(0);
            assertArrayEquals(alone.tokenIds(), longRow.result.tokenIds(), "the long row, undisturbed");
            var shortAlone = model.generation().generate(List.of(jobs.get(jobs.size() - 3).request()), shortParams).get(0);
            assertArrayEquals(shortAlone.tokenIds(), shortRow.result.tokenIds(), "the short row, undisturbed");
            assertTrue(longRow.result.decodeNanos() > shortRow.result.decodeNanos());
        }
    }
}
