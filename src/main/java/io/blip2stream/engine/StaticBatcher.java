package io.blip2stream.engine;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Static batching ({@code inference.batching: static}), on a thread of its own: a first arrival waits at most
 * {@code maxWaitMs} for others, a batch holds at most {@code maxBatchSize}, runs to its end ({@link
 * InferenceRunner#run}), and the requests that arrived meanwhile form the next one. Simpler and, for requests
 * that all arrive together, as fast as {@link ContinuousBatcher}; a request that arrives while a batch runs waits
 * for all of it.
 */
public final class StaticBatcher extends SchedulerThread {
    private static final Logger LOG = LoggerFactory.getLogger(StaticBatcher.class);

    private final InferenceRunner runner;
    private final int maxBatchSize;
    private final long maxWaitNanos;

    public StaticBatcher(InferenceRunner runner, String name, int maxBatchSize, long maxWaitMs, Listener listener) {
        super("blip2-batch-" + name, listener);
        if (maxBatchSize < 1) {
            throw new IllegalArgumentException("max batch size must be at least 1, not " + maxBatchSize);
        }
        this.runner = runner;
        this.maxBatchSize = maxBatchSize;
        this.maxWaitNanos = TimeUnit.MILLISECONDS.toNanos(Math.max(0, maxWaitMs));
    }

    @Override
    public StaticBatcher start() {
        super.start();
        return this;
    }

    @Override
    protected boolean turn() throws InterruptedException {
        InferenceJob first = awaitFirst();
        if (first == null) {
            return !finished();
        }
        List<InferenceJob> batch = new ArrayList<>(List.of(first));
        long until = System.nanoTime() + maxWaitNanos;
        while (batch.size() < maxBatchSize) {
            long left = until - System.nanoTime();
            InferenceJob next = left > 0 ? arrivals().poll(left, TimeUnit.NANOSECONDS) : arrivals().poll();
            if (next == null) {
                break;
            }
            batch.add(next);
        }
        run(batch);
        return true;
    }

    private void run(List<InferenceJob> batch) {
        batch.forEach(listener::onAdmitted);
        listener.onStep(batch.size());
        listener.onPassEnd();
        List<InferenceRunner.Outcome> outcomes;
        try {
            outcomes = runner.run(batch, new TokenSink() {
                @Override
                public void onToken(InferenceJob job, int index, int tokenId, String text) {
                    listener.onToken(job, index, tokenId, text);
                    listener.onPassEnd(); // the batch runs to its end: its tokens go out as they come
                }

                @Override
                public boolean isCancelled(InferenceJob job) {
                    return listener.isCancelled(job);
                }
            });
        } catch (RuntimeException e) {
            LOG.error("batch of {} failed", batch.size(), e);
            outcomes = new ArrayList<>(batch.size());
            for (InferenceJob job : batch) {
                outcomes.add(InferenceRunner.internalFailure(job, e));
            }
        }
        outcomes.forEach(listener::onOutcome);
    }
}
