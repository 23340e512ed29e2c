package io.blip2stream.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.generation.FinishReason;
import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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

    static class Recorder implements Scheduler.Listener {
        final Map<String, InferenceRunner.Outcome> outcomes = new ConcurrentHashMap<>();
        final Map<String, List<Integer>> tokens = new ConcurrentHashMap<>();
        final List<String> order = new CopyOnWriteArrayList<>();
        final List<Integer> stepRows = new CopyOnWriteArrayList<>();
        final CountDownLatch stopped = new CountDownLatch(1);
        final CountDownLatch firstToken = new CountDownLatch(1);
        final Map<String, List<Long>> tokenTimes = new ConcurrentHashMap<>();
        final Set<String> cancelled = ConcurrentHashMap.newKeySet();
        final Map<String, Integer> cancelAfter = new ConcurrentHashMap<>(); // id -> cancel once it has this many tokens

        @Override
        public void onAdmitted(InferenceJob job) {}

        @Override
        public void onToken(InferenceJob job, int index, int tokenId, String text) {
            tokens.computeIfAbsent(job.id(), k -> new CopyOnWriteArrayList<>()).add(tokenId);
            tokenTimes.computeIfAbsent(job.id(), k -> new CopyOnWriteArrayList<>()).add(System.nanoTime());
            if (cancelAfter.getOrDefault(job.id(), -1) == index + 1) {
                cancelled.add(job.id());
            }
            firstToken.countDown();
        }

        @Override
        public boolean isCancelled(InferenceJob job) {
            return cancelled.contains(job.id());
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

    /** The fixtures' texts side: jobs carry their prompts' ids, as the service's decoder gives them. */
    static final RequestTexts TEXTS = RequestTexts.load(Fixtures.model("blip2-opt-tiny"), Fixtures.model("blip2-itm-tiny"), 256);

    static InferenceJob caption(String id, byte[] image, GenerationParams p) {
        return withDeadline(id, Task.CAPTION, image, null, p, InferenceJob.NO_DEADLINE);
    }

    /**
     * Arrivals while rows decode are held for company: three requests 60 ms apart join the running row in one
     * admission (the rows decoded go from 1 to 4 at once), the first held no longer than the join wait; and they
     * join at once when they fill the free rows.
     */
    @Test
    void arrivalsWhileRowsDecodeAreHeldForCompanyWithinTheJoinWait() throws Exception {
        byte[] image = Fixtures.image(FIXTURE, 0);
        InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), null,
                Engines.Kind.TENSORFLOW, "cpu", new InferenceRunner.Limits(256, 40_000_000, 20));
        Map<String, Long> admittedAt = new ConcurrentHashMap<>();
        Map<String, Long> submittedAt = new ConcurrentHashMap<>();
        Recorder rec = new Recorder() {
            @Override
            public void onAdmitted(InferenceJob job) {
                admittedAt.put(job.id(), System.nanoTime());
            }
        };
        AdmissionPolicy policy = new AdmissionPolicy(5, 400);
        policy.admitted(1, TimeUnit.SECONDS.toNanos(10)); // as if admitting a request cost 10 s: the wait is the bound
        ContinuousBatcher b = new ContinuousBatcher(runner, "test", 5, policy, rec).start();
        try {
            b.submit(caption("long", image, GenerationParams.builder().maxNewTokens(80).minNewTokens(80).build()));
            assertTrue(rec.firstToken.await(30, TimeUnit.SECONDS));
            for (String id : List.of("a", "b", "c")) {
                submittedAt.put(id, System.nanoTime());
                b.submit(caption(id, image, GenerationParams.greedy(6)));
                Thread.sleep(60);
            }
            // later, four at once fill the four free rows: no wait
            while (!rec.outcomes.containsKey("c")) {
                Thread.sleep(5);
            }
            long fill = System.nanoTime();
            for (String id : List.of("d", "e", "f", "g")) {
                b.submit(caption(id, image, GenerationParams.greedy(6)));
            }
            b.close(60_000);
            assertTrue(rec.stopped.await(1, TimeUnit.SECONDS));
            assertNull(rec.outcomes.get("a").error());
            long spread = Math.max(admittedAt.get("a"), Math.max(admittedAt.get("b"), admittedAt.get("c")))
                    - Math.min(admittedAt.get("a"), Math.min(admittedAt.get("b"), admittedAt.get("c")));
            assertTrue(spread < TimeUnit.MILLISECONDS.toNanos(5), "a, b and c admitted together: " + spread / 1e6 + " ms apart");
            long heldA = admittedAt.get("a") - submittedAt.get("a");
            assertTrue(heldA >= TimeUnit.MILLISECONDS.toNanos(115), "a waited for b and c: " + heldA / 1e6 + " ms");
            assertTrue(heldA < TimeUnit.MILLISECONDS.toNanos(400 + 150), "within the join wait (and a step): " + heldA / 1e6 + " ms");
            assertTrue(rec.stepRows.contains(4), rec.stepRows.toString());
            assertFalse(rec.stepRows.contains(2) || rec.stepRows.contains(3), "no step with a or b alone beside the long row: " + rec.stepRows);
            long heldD = admittedAt.get("d") - fill;
            assertTrue(heldD < TimeUnit.MILLISECONDS.toNanos(150), "d, e, f and g filled the free rows: " + heldD / 1e6 + " ms");
        } finally {
            runner.close();
        }
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
            b.submit(withDeadline("match", Task.MATCH, Fixtures.image("blip2-itm-tiny", 0), List.of("a photo", "a dog"), null,
                    InferenceJob.NO_DEADLINE));
            b.close(60_000);
            assertTrue(r.stopped.await(1, TimeUnit.SECONDS), "the thread ended after the work handed over");
        } finally {
            runner.close();
        }
        assertEquals(5, r.outcomes.size(), r.order.toString());
        assertEquals(RequestError.INVALID_IMAGE, r.outcomes.get("bad-image").error().code());
        assertNull(r.tokens.get("bad-image"));
        InferenceResult greedy = r.outcomes.get("greedy").result();
        assertArrayEquals(Fixtures.ints(cases.get(0).get("greedy_new_tokens")), greedy.generated().tokenIds(), "greedy, joined mid-way");
        assertArrayEquals(greedy.generated().tokenIds(), r.tokens.get("greedy").stream().mapToInt(Integer::intValue).toArray());
        assertArrayEquals(Fixtures.ints(cases.get(0).get("beam3_new_tokens")), r.outcomes.get("beam").result().generated().tokenIds());
        assertEquals(2, ((InferenceResult.Matched) r.outcomes.get("match").result().output()).matches().size());
        InferenceResult longRow = r.outcomes.get("long").result();
        assertEquals(60, longRow.generated().tokenIds().length);
        assertEquals(FinishReason.LENGTH, longRow.generated().finishReason());
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
            assertEquals(4 + i, r.outcomes.get("c" + i).result().generated().tokenIds().length);
        }
        assertTrue(r.stepRows.stream().allMatch(n -> n <= 2), "never more rows than max_batch_size: " + r.stepRows);
    }

    static InferenceJob withDeadline(String id, Task task, byte[] image, List<String> texts, GenerationParams p,
                                     long deadlineNanos) {
        return InferenceJob.of(id, task, image, null, null, texts, TEXTS.encode(task, null, null, texts, p), p, task.generates(),
                System.nanoTime(), deadlineNanos);
    }

    /**
     * A job past its deadline when admitted starts no work (no tokens, no vision encoder: finish_reason timeout, or
     * the error timeout for match); a row whose deadline passes while it decodes stops at its next token, with
     * what it had; a row its owner cancels leaves the batch within 2 tokens; rows without either run to their end.
     */
    @Test
    void deadlinesAndCancellationStopRowsBetweenSteps() throws Exception {
        List<JsonNode> cases = Fixtures.cases(FIXTURE);
        byte[] image = Fixtures.image(FIXTURE, 0);
        long stepDelayMs = 20;
        InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), Fixtures.model("blip2-itm-tiny"),
                Engines.Kind.TENSORFLOW, "cpu", new InferenceRunner.Limits(256, 40_000_000, stepDelayMs));
        Recorder r = new Recorder();
        ContinuousBatcher b = new ContinuousBatcher(runner, "test", 8, 5, r).start();
        GenerationParams longRun = GenerationParams.builder().maxNewTokens(110).minNewTokens(110).build();
        long shortDeadline;
        try {
            long past = System.nanoTime() - 1;
            b.submit(withDeadline("expired", Task.CAPTION, image, null, GenerationParams.greedy(12), past));
            b.submit(withDeadline("expired-match", Task.MATCH, Fixtures.image("blip2-itm-tiny", 0), List.of("a photo"), null, past));
            shortDeadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(400);
            b.submit(withDeadline("short", Task.CAPTION, image, null, longRun, shortDeadline));
            b.submit(withDeadline("later", Task.CAPTION, image, null, GenerationParams.greedy(12),
                    System.nanoTime() + TimeUnit.SECONDS.toNanos(60)));
            r.cancelAfter.put("cancelled", 3);
            b.submit(caption("cancelled", image, longRun));
            b.close(60_000);
            assertTrue(r.stopped.await(1, TimeUnit.SECONDS));
        } finally {
            runner.close();
        }
        assertEquals(5, r.outcomes.size(), r.order.toString());

        InferenceResult expired = r.outcomes.get("expired").result();
        assertEquals(FinishReason.TIMEOUT, expired.generated().finishReason());
        assertEquals(0, expired.generated().tokenIds().length);
        assertEquals(0.0, expired.timings().visionMs(), "no vision encoder ran for it");
        assertNull(r.tokens.get("expired"), "no token of it");
        assertEquals(RequestError.TIMEOUT, r.outcomes.get("expired-match").error().code());

        assertNull(r.outcomes.get("short").error(), () -> r.outcomes.get("short").error().getMessage());
        InferenceResult shortRow = r.outcomes.get("short").result();
        assertEquals(FinishReason.TIMEOUT, shortRow.generated().finishReason());
        int n = shortRow.generated().tokenIds().length;
        assertTrue(n > 0 && n < 110, n + " tokens before the deadline");
        assertEquals(n, r.tokens.get("short").size(), "every token it had was streamed");
        long slack = TimeUnit.MILLISECONDS.toNanos(50);
        for (long t : r.tokenTimes.get("short")) {
            assertTrue(t <= shortDeadline + slack, "a token " + (t - shortDeadline) / 1e6 + " ms after the deadline");
        }

        InferenceResult cancelled = r.outcomes.get("cancelled").result();
        assertEquals(FinishReason.CANCELLED, cancelled.generated().finishReason());
        assertTrue(cancelled.generated().tokenIds().length <= 3 + 2, "left within 2 tokens of the cancel: " + cancelled.generated().tokenIds().length);

        InferenceResult later = r.outcomes.get("later").result();
        assertEquals(FinishReason.LENGTH, later.generated().finishReason());
        assertArrayEquals(Fixtures.ints(cases.get(0).get("greedy_new_tokens")), later.generated().tokenIds(), "a deadline not reached changes nothing");
    }

    /** The same rules when a batch runs to its end (static batching, beam search): the runner's own path. */
    @Test
    void deadlinesInAStaticBatch() throws Exception {
        byte[] image = Fixtures.image(FIXTURE, 0);
        try (InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), null, Engines.Kind.TENSORFLOW, "cpu",
                new InferenceRunner.Limits(256, 40_000_000, 20))) {
            GenerationParams beams = GenerationParams.builder().maxNewTokens(110).minNewTokens(110).numBeams(2).build();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50);
            List<InferenceRunner.Outcome> out = runner.run(List.of(
                    withDeadline("expired", Task.CAPTION, image, null, beams, System.nanoTime() - 1),
                    withDeadline("short", Task.CAPTION, image, null, beams, deadline)), TokenSink.NONE);
            assertEquals(FinishReason.TIMEOUT, out.get(0).result().generated().finishReason());
            assertEquals(0, out.get(0).result().generated().tokenIds().length);
            assertNull(out.get(1).error(), () -> out.get(1).error().getMessage());
            InferenceResult shortRow = out.get(1).result();
            assertEquals(FinishReason.TIMEOUT, shortRow.generated().finishReason());
            assertTrue(shortRow.generated().tokenIds().length < 110, shortRow.generated().tokenIds().length + " tokens");
        }
    }

    /**
     * 1,000 races of a cancel against the end of generation: the cancel comes from another thread at a random
     * moment, before the job is admitted, while it decodes, or after it finished. Every job gets exactly one
     * outcome; a job never cancelled never ends as cancelled; one that ends cancelled has fewer tokens than asked.
     */
    @Test
    @Timeout(value = 30, unit = TimeUnit.MINUTES) // the long-tests profile's 20,000 races outlast the class's 120 s
    void cancelRacingCompletionLeavesExactlyOneOutcomeEach() throws Exception {
        byte[] image = Fixtures.image(FIXTURE, 0);
        int n = Integer.getInteger("blip2.races", 1000); // the long-tests profile: 20,000
        InferenceRunner runner = InferenceRunner.load(Fixtures.model(FIXTURE), null, Engines.Kind.TENSORFLOW, "cpu",
                new InferenceRunner.Limits(256, 40_000_000, 0));
        Map<String, java.util.concurrent.atomic.AtomicInteger> counts = new ConcurrentHashMap<>();
        Map<String, InferenceRunner.Outcome> last = new ConcurrentHashMap<>();
        java.util.concurrent.Semaphore window = new java.util.concurrent.Semaphore(16); // a short queue: cancels land in every phase
        Recorder r = new Recorder() {
            @Override
            public void onOutcome(InferenceRunner.Outcome o) {
                counts.computeIfAbsent(o.job().id(), k -> new java.util.concurrent.atomic.AtomicInteger()).incrementAndGet();
                last.put(o.job().id(), o);
                window.release();
            }
        };
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(7);
        ContinuousBatcher b = new ContinuousBatcher(runner, "race", 8, 0, r).start();
        java.util.concurrent.ScheduledExecutorService cancels = java.util.concurrent.Executors.newScheduledThreadPool(2);
        Set<String> cancelSent = ConcurrentHashMap.newKeySet();
        try {
            for (int i = 0; i < n; i++) {
                String id = "r" + i;
                int tokens = 1 + rnd.nextInt(12);
                assertTrue(window.tryAcquire(30, TimeUnit.SECONDS));
                b.submit(caption(id, image, GenerationParams.builder().maxNewTokens(tokens).minNewTokens(tokens).build()));
                if (rnd.nextInt(4) != 0) { // three in four get a cancel, at a random moment of the job's life
                    cancels.schedule(() -> {
                        cancelSent.add(id);
                        r.cancelled.add(id);
                    }, rnd.nextInt(600_000), TimeUnit.MICROSECONDS);
                }
            }
            cancels.shutdown();
            assertTrue(cancels.awaitTermination(30, TimeUnit.SECONDS));
            b.close(120_000);
            assertTrue(r.stopped.await(1, TimeUnit.SECONDS));
        } finally {
            runner.close();
        }
        assertEquals(n, counts.size(), "every job has an outcome");
        int endedCancelled = 0;
        for (int i = 0; i < n; i++) {
            String id = "r" + i;
            assertEquals(1, counts.get(id).get(), id + ": exactly one outcome");
            InferenceRunner.Outcome o = last.get(id);
            assertNull(o.error(), id);
            FinishReason reason = o.result().generated().finishReason();
            if (reason == FinishReason.CANCELLED) {
                endedCancelled++;
                assertTrue(cancelSent.contains(id), id + " ended cancelled without a cancel");
                assertTrue(o.result().generated().tokenIds().length < o.job().generation().params().maxNewTokens(), id);
            } else {
                assertEquals(o.job().generation().params().maxNewTokens(), o.result().generated().tokenIds().length, id);
            }
        }
        assertTrue(endedCancelled > 0 && endedCancelled < cancelSent.size(),
                "cancels landed both before and after the end: " + endedCancelled + " of " + cancelSent.size());
    }
}
