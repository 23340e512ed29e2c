package io.blip2stream.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import static io.blip2stream.engine.ContinuousBatcherTest.FIXTURE;
import static io.blip2stream.engine.ContinuousBatcherTest.caption;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Static batching behind the same {@link Scheduler} as continuous batching: arrivals within the wait form one batch
 * of at most the batch size, arrivals while it runs form the next, each job has one outcome with its tokens before
 * it, a bad job fails alone, and closing finishes what was handed over.
 */
@Timeout(120)
class StaticBatcherTest {

    @Test
    void arrivalsWithinTheWaitRunTogetherAndLaterOnesFormTheNextBatch() throws Exception {
        List<JsonNode> cases = Fixtures.cases(FIXTURE);
        byte[] image = Fixtures.image(FIXTURE, 0);
        Map<String, Long> admittedAt = new ConcurrentHashMap<>();
        ContinuousBatcherTest.Recorder r = new ContinuousBatcherTest.Recorder() {
            @Override
            public void onAdmitted(InferenceJob job) {
                admittedAt.put(job.id(), System.nanoTime());
            }
        };
        try (InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), null, Engines.Kind.TENSORFLOW, "cpu",
                new InferenceRunner.Limits(256, 40_000_000, 20))) {
            Scheduler s = Scheduler.of(false, runner, "test", 3, 200, 0, r).start();
            assertTrue(s instanceof StaticBatcher);
            for (String id : List.of("a", "b", "c", "d")) { // three fill the first batch, d waits for the next
                s.submit(caption(id, image, GenerationParams.greedy(12)));
            }
            s.submit(caption("bad-image", new byte[] {1, 2, 3}, GenerationParams.greedy(5)));
            s.close(60_000);
            assertTrue(r.stopped.await(1, TimeUnit.SECONDS), "the thread ended after the work handed over");
            assertThrows(IllegalStateException.class, () -> s.submit(caption("late", image, GenerationParams.greedy(2))));
        }
        assertEquals(List.of(3, 2), r.stepRows, "a batch of three (the batch size), then d with the bad image");
        assertEquals(5, r.outcomes.size(), r.order.toString());
        long spread = Math.max(admittedAt.get("a"), admittedAt.get("c")) - Math.min(admittedAt.get("a"), admittedAt.get("c"));
        assertTrue(spread < TimeUnit.MILLISECONDS.toNanos(5), "a, b and c admitted together: " + spread / 1e6 + " ms apart");
        assertTrue(admittedAt.get("d") - admittedAt.get("c") > TimeUnit.MILLISECONDS.toNanos(100),
                "d waited for the first batch to end (12 steps of 20 ms)");
        int[] want = Fixtures.ints(cases.get(0).get("greedy_new_tokens"));
        for (String id : List.of("a", "b", "c", "d")) {
            InferenceResult result = r.outcomes.get(id).result();
            assertNull(r.outcomes.get(id).error());
            assertArrayEquals(want, result.generated().tokenIds(), id);
            assertArrayEquals(result.generated().tokenIds(), r.tokens.get(id).stream().mapToInt(Integer::intValue).toArray(),
                    id + " streamed the tokens of its result");
        }
        assertEquals(RequestError.INVALID_IMAGE, r.outcomes.get("bad-image").error().code());
        assertTrue(r.order.indexOf("c") < r.order.indexOf("d"), r.order.toString());
    }

    @Test
    void aLoneArrivalWaitsNoLongerThanTheWait() throws Exception {
        Map<String, Long> admittedAt = new ConcurrentHashMap<>();
        ContinuousBatcherTest.Recorder r = new ContinuousBatcherTest.Recorder() {
            @Override
            public void onAdmitted(InferenceJob job) {
                admittedAt.put(job.id(), System.nanoTime());
            }
        };
        try (InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), null, Engines.Kind.TENSORFLOW, "cpu",
                new InferenceRunner.Limits(256, 40_000_000, 0))) {
            Scheduler s = new StaticBatcher(runner, "lone", 8, 50, r).start();
            long submitted = System.nanoTime();
            s.submit(caption("alone", Fixtures.image(FIXTURE, 0), GenerationParams.greedy(3)));
            s.close(60_000);
            long held = admittedAt.get("alone") - submitted;
            assertTrue(held >= TimeUnit.MILLISECONDS.toNanos(45), "it waited for company: " + held / 1e6 + " ms");
            assertTrue(held < TimeUnit.MILLISECONDS.toNanos(50 + 150), "no longer than the wait: " + held / 1e6 + " ms");
            assertEquals(3, r.outcomes.get("alone").result().generated().tokenIds().length);
        }
        assertThrows(IllegalArgumentException.class, () -> new StaticBatcher(null, "none", 0, 10, new ContinuousBatcherTest.Recorder()));
    }
}
