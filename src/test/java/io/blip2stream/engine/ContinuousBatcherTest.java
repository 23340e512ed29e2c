package io.blip2stream.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.generation.FinishReason;
import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The batcher's thread: requests that arrive while others decode join them between steps; a bad image, a beam
 * search and a match admitted in between get their own outcomes without disturbing the running rows; closing
 * finishes every request handed over.
 */
@Timeout(120)
class ContinuousBatcherTest {
    static final String FIXTURE = "blip2-opt-tiny";

    static final class Recorder implements ContinuousBatcher.Listener {
        final Map<String, InferenceRunner.Outcome> outcomes = new ConcurrentHashMap<>();
        final Map<String, List<Integer>> tokens = new ConcurrentHashMap<>();
        final List<String> order = new CopyOnWriteArrayList<>();
        final List<Integer> stepRows = new CopyOnWriteArrayList<>();
        final CountDownLatch stopped = new CountDownLatch(1);
        final CountDownLatch firstToken = new CountDownLatch(1);

        @Override
        public void onAdmitted(InferenceJob job) {}

        @Override
        public void onToken(InferenceJob job, int index, int tokenId, String text) {
            tokens.computeIfAbsent(job.id(), k -> new CopyOnWriteArrayList<>()).add(tokenId);
            firstToken.countDown();
        }

        @Override
        public boolean isCancelled(InferenceJob job) {
            return false;
        }

        @Override
        public void onOutcome(InferenceRunner.Outcome o) {
            outcomes.put(o.job().id(), o);
            order.add(o.job().id());
        }

        @Override
        public void onStep(int rows) {
            stepRows.add(rows);
        }

        @Override
        public void onStopped() {
            stopped.countDown();
        }
    }

    static InferenceJob caption(String id, byte[] image, GenerationParams p) {
        return new InferenceJob(id, Task.CAPTION, image, null, null, null, p, true, System.nanoTime());
    }

    @Test
    void arrivalsJoinBetweenStepsAndOthersRunAsGroupsOfTheirOwn() throws Exception {
        List<JsonNode> cases = Fixtures.cases(FIXTURE);
        byte[] image = Fixtures.image(FIXTURE, 0);
        InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), Fixtures.model("blip2-itm-tiny"),
                Engines.Kind.TENSORFLOW, "cpu", new InferenceRunner.Limits(256, 40_000_000, 5));
        Recorder r = new Recorder();
        ContinuousBatcher b = new ContinuousBatcher(runner, "test", 8, 5, r).start();
        try {
            b.submit(caption("long", image, GenerationParams.builder().maxNewTokens(60).minNewTokens(60).build()));
            assertTrue(r.firstToken.await(30, TimeUnit.SECONDS));
            b.submit(caption("bad-image", new byte[] {1, 2, 3}, GenerationParams.greedy(5)));
            b.submit(caption("greedy", image, GenerationParams.greedy(12)));
            b.submit(caption("beam", image, GenerationParams.builder().maxNewTokens(8).numBeams(3).build()));
            b.submit(new InferenceJob("match", Task.MATCH, Fixtures.image("blip2-itm-tiny", 0), null, null,
                    List.of("a photo", "a dog"), null, false, System.nanoTime()));
            b.close(60_000);
            assertTrue(r.stopped.await(1, TimeUnit.SECONDS), "the thread ended after the work handed over");
        } finally {
            runner.close();
        }
        assertEquals(5, r.outcomes.size(), r.order.toString());
        assertEquals(RequestError.INVALID_IMAGE, r.outcomes.get("bad-image").error().code());
        assertNull(r.tokens.get("bad-image"));
        InferenceResult greedy = r.outcomes.get("greedy").result();
        assertArrayEquals(Fixtures.ints(cases.get(0).get("greedy_new_tokens")), greedy.tokenIds(), "greedy, joined mid-way");
        assertArrayEquals(greedy.tokenIds(), r.tokens.get("greedy").stream().mapToInt(Integer::intValue).toArray());
        assertArrayEquals(Fixtures.ints(cases.get(0).get("beam3_new_tokens")), r.outcomes.get("beam").result().tokenIds());
        assertEquals(2, r.outcomes.get("match").result().matches().size());
        InferenceResult longRow = r.outcomes.get("long").result();
        assertEquals(60, longRow.tokenIds().length);
        assertEquals(FinishReason.LENGTH, longRow.finishReason());
        assertTrue(r.order.indexOf("greedy") < r.order.indexOf("long"), "the later, shorter request finished first: " + r.order);
        assertTrue(r.stepRows.contains(2), "two rows decoded together: " + r.stepRows);
    }

    @Test
    void closingFinishesWhatWasHandedOver() throws Exception {
        InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), null, Engines.Kind.PYTORCH, "cpu",
                new InferenceRunner.Limits(256, 40_000_000, 0));
        Recorder r = new Recorder();
        ContinuousBatcher b = new ContinuousBatcher(runner, "test", 2, 0, r).start();
        try {
            for (int i = 0; i < 5; i++) {
                b.submit(caption("c" + i, Fixtures.image(FIXTURE, i % 3), GenerationParams.greedy(4 + i)));
            }
            b.close(60_000);
        } finally {
            runner.close();
        }
        assertEquals(0, r.stopped.getCount(), "the thread ended");
        assertEquals(5, r.outcomes.size());
        for (int i = 0; i < 5; i++) {
            assertEquals(4 + i, r.outcomes.get("c" + i).result().tokenIds().length);
        }
        assertTrue(r.stepRows.stream().allMatch(n -> n <= 2), "never more rows than max_batch_size: " + r.stepRows);
    }
}
