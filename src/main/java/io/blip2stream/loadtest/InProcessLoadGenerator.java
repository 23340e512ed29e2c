package io.blip2stream.loadtest;

import io.blip2stream.common.Millis;
import io.blip2stream.engine.ContinuousBatcher;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.InferenceResult;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.Scheduler;
import org.HdrHistogram.Histogram;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

/**
 * The workers' raw throughput: the same requests as a Kafka load, handed straight to one device's
 * {@link ContinuousBatcher} (what an inference worker runs), with no Kafka, no event bus, no JSON on the way
 * back. Against it, a run through Kafka shows what the service around the model costs.
 */
public final class InProcessLoadGenerator {

    /** What a run measured. Latencies in milliseconds, from submit to outcome. */
    public record Report(int sent, int answered, int errors, double seconds, double throughput, double p50, double p90,
                         double p99, double max, long tokens, double tokensPerSecond, Map<String, Double> stagesP50) {}

    private static final String WARMUP = "warmup-";
    private static final String WARMUP_LOOP = WARMUP + "loop-";

    private InProcessLoadGenerator() {}

    /**
     * @param maxJoinWaitMs while rows decode, how long arrivals may wait for others (the service's setting)
     * @param warmupRounds  before the measured requests, rounds of 1, 2, ... up to this many requests together (the
     *                      service's warm-up, so both are measured warm); 0: none
     * @param warmup      then requests sent the same way as the measured ones and not counted (what a Kafka load's
     *                    {@code warmup} does, so both compare warm paths); 0: none
     * @param concurrency requests outstanding at once (closed loop), or 0: open loop at {@code rate}
     * @param rate        open loop: requests per second (0: all at once)
     * @param job         the i-th request for the given id
     */
    public static Report run(InferenceRunner runner, int maxBatchSize, long maxWaitMs, long maxJoinWaitMs, int warmupRounds,
                             int warmup, int requests, int concurrency,
                             double rate, Function<String, InferenceJob> job, long timeoutMs) throws InterruptedException {
        Histogram latency = new Histogram(TimeUnit.MINUTES.toMicros(30), 3);
        Map<String, Long> sentAt = new ConcurrentHashMap<>();
        AtomicInteger errors = new AtomicInteger();
        AtomicLong tokens = new AtomicLong();
        StageTimes stages = new StageTimes();
        CountDownLatch answered = new CountDownLatch(requests);
        Semaphore outstanding = new Semaphore(concurrency > 0 ? concurrency : Integer.MAX_VALUE);
        Semaphore warmedUp = new Semaphore(0);
        Semaphore warmOutstanding = new Semaphore(concurrency > 0 ? concurrency : Integer.MAX_VALUE);
        ContinuousBatcher batcher = new ContinuousBatcher(runner, "load", maxBatchSize, maxWaitMs, maxJoinWaitMs, new Scheduler.Listener() {
            @Override
            public void onAdmitted(InferenceJob j) {}

            @Override
            public void onToken(InferenceJob j, int index, int tokenId, String text) {}

            @Override
            public boolean isCancelled(InferenceJob j) {
                return false;
            }

            @Override
            public void onOutcome(InferenceRunner.Outcome o) {
                if (o.job().id().startsWith(WARMUP)) {
                    if (o.job().id().startsWith(WARMUP_LOOP)) {
                        warmOutstanding.release();
                    }
                    warmedUp.release();
                    return;
                }
                Long t0 = sentAt.remove(o.job().id());
                if (t0 != null) {
                    synchronized (latency) {
                        latency.recordValue(Math.max(1, (System.nanoTime() - t0) / 1000));
                    }
                }
                if (o.error() != null) {
                    errors.incrementAndGet();
                } else {
                    var t = o.result().timings();
                    if (t != null) {
                        stages.record(t.queuedMs(), t.preprocessMs(), t.visionMs(), t.qformerMs(), t.prefillMs(), t.decodeMs(), t.totalMs());
                    }
                    if (o.result().output() instanceof InferenceResult.Generated g) {
                        tokens.addAndGet(g.tokenIds().length);
                    }
                }
                outstanding.release();
                answered.countDown();
            }
        }).start();
        int rounds = Math.min(warmupRounds, maxBatchSize);
        for (int together = 1, n = 0; together <= rounds; together++) {
            for (int i = 0; i < together; i++, n++) {
                batcher.submit(job.apply(WARMUP + n));
            }
            if (!warmedUp.tryAcquire(together, timeoutMs, TimeUnit.MILLISECONDS)) {
                batcher.close(timeoutMs); // before the caller closes the runner under it
                throw new IllegalStateException("the warm-up did not finish within " + timeoutMs + " ms");
            }
        }
        if (warmup > 0) {
            send(batcher, job, WARMUP_LOOP, warmup, concurrency, rate, warmOutstanding, null);
            if (!warmedUp.tryAcquire(warmup, timeoutMs, TimeUnit.MILLISECONDS)) {
                batcher.close(timeoutMs);
                throw new IllegalStateException("the warm-up requests did not finish within " + timeoutMs + " ms");
            }
        }
        long start = System.nanoTime();
        try {
            send(batcher, job, "inproc-", requests, concurrency, rate, outstanding, sentAt);
            answered.await(timeoutMs, TimeUnit.MILLISECONDS);
        } finally {
            batcher.close(timeoutMs);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        int done = requests - (int) answered.getCount();
        return new Report(requests, done, errors.get(), seconds, done / seconds,
                Millis.ofMicros(latency.getValueAtPercentile(50)), Millis.ofMicros(latency.getValueAtPercentile(90)), Millis.ofMicros(latency.getValueAtPercentile(99)),
                Millis.ofMicros(latency.getMaxValue()), tokens.get(), tokens.get() / seconds, stages.medians());
    }

    /** Submits {@code n} requests with ids {@code prefix + i}: a closed loop on {@code outstanding}, or at a rate. */
    private static void send(ContinuousBatcher batcher, Function<String, InferenceJob> job, String prefix, int n, int concurrency,
                             double rate, Semaphore outstanding, Map<String, Long> sentAt) throws InterruptedException {
        long start = System.nanoTime();
        for (int i = 0; i < n; i++) {
            if (concurrency == 0 && rate > 0) {
                long wait = start + (long) (i * 1e9 / rate) - System.nanoTime();
                if (wait > 0) {
                    TimeUnit.NANOSECONDS.sleep(wait);
                }
            }
            outstanding.acquire();
            String id = prefix + i;
            InferenceJob j = job.apply(id);
            if (sentAt != null) {
                sentAt.put(id, System.nanoTime());
            }
            batcher.submit(j);
        }
    }

}
