package io.blip2stream.engine;

import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.GenerationParams;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Iteration-level scheduling of one device's runner, on a thread of its own: between two decode steps, the
 * requests that arrived are admitted (their images through the vision encoder and the Q-Former in one batch,
 * their prompts through the language model in one prefill, their first token picked at once) and join the
 * running batch; a request leaves it the step it finishes. At most {@code maxBatchSize} rows decode together;
 * when the device is idle, a first arrival waits up to {@code maxWaitMs} for others to share its encoding.
 *
 * <p>A job whose deadline has passed when it is admitted is not started (finish_reason timeout, no tokens); a
 * running row stops at its next token once its deadline passes or its owner cancels it, and leaves the batch.
 *
 * <p>Beam search (its beams move in lockstep), match and embed run as groups of their own when they are
 * admitted, between two steps of the running batch.
 *
 * <p>{@link #submit} may be called from any thread; everything else happens on the batcher's thread, which is
 * where the {@link Listener} is called.
 */
public final class ContinuousBatcher implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ContinuousBatcher.class);

    /** What the batcher reports, on its own thread. */
    public interface Listener {
        /** The job left the queue: the model works on it now. */
        void onAdmitted(InferenceJob job);

        /** A new token of a job. */
        void onToken(InferenceJob job, int index, int tokenId, String text);

        /** Asked before each of a job's tokens: true ends it with finish_reason cancelled. */
        boolean isCancelled(InferenceJob job);

        /** The job's end, a result or an error. */
        void onOutcome(InferenceRunner.Outcome outcome);

        /** After each decode step, the number of rows it decoded. */
        default void onStep(int rows) {}

        /** The batcher's thread is about to end: every job submitted has had its outcome. */
        default void onStopped() {}
    }

    private final InferenceRunner runner;
    private final int maxBatchSize;
    private final long maxWaitMs;
    private final Listener listener;
    private final LinkedBlockingQueue<InferenceJob> arrivals = new LinkedBlockingQueue<>();
    private final ContinuousBatch batch;
    private final Stops stops = new Stops(); // why rows stopped early: cancelled or past their deadline
    private final Thread thread;
    private volatile boolean closing;

    public ContinuousBatcher(InferenceRunner runner, String name, int maxBatchSize, long maxWaitMs, Listener listener) {
        this.runner = runner;
        this.maxBatchSize = maxBatchSize;
        this.maxWaitMs = maxWaitMs;
        this.listener = listener;
        this.batch = new ContinuousBatch(runner.generationModel() == null ? -1 : runner.generationModel().eosTokenId());
        this.thread = new Thread(this::loop, "blip2-decode-" + name);
        this.thread.setDaemon(true);
    }

    public ContinuousBatcher start() {
        thread.start();
        return this;
    }

    /** Queues a job; it joins the running batch between two steps. */
    public void submit(InferenceJob job) {
        if (closing) {
            throw new IllegalStateException("the batcher is closing");
        }
        arrivals.add(job);
    }

    /** Jobs waiting to be admitted. */
    public int queued() {
        return arrivals.size();
    }

    private void loop() {
        try {
            while (true) {
                List<InferenceJob> admitted = new ArrayList<>();
                if (batch.isEmpty()) {
                    InferenceJob first = arrivals.poll(100, TimeUnit.MILLISECONDS);
                    if (first == null) {
                        if (closing && arrivals.isEmpty()) {
                            break;
                        }
                        continue;
                    }
                    admitted.add(first);
                    // idle: give others a moment to share the vision encoder and the prefill
                    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(maxWaitMs);
                    while (admitted.size() < maxBatchSize) {
                        long left = deadline - System.nanoTime();
                        InferenceJob next = left > 0 ? arrivals.poll(left, TimeUnit.NANOSECONDS) : arrivals.poll();
                        if (next == null) {
                            break;
                        }
                        admitted.add(next);
                    }
                } else {
                    arrivals.drainTo(admitted, Math.max(0, maxBatchSize - batch.size()));
                }
                if (!admitted.isEmpty()) {
                    admit(admitted);
                }
                if (!batch.isEmpty()) {
                    step();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            LOG.warn("decode thread interrupted; {} rows running and {} queued get no result", batch.size(), arrivals.size());
        } catch (RuntimeException | Error e) {
            LOG.error("decode thread failed", e);
        } finally {
            batch.close();
            listener.onStopped();
        }
    }

    private void admit(List<InferenceJob> jobs) {
        long admittedAt = System.nanoTime();
        List<InferenceJob> joining = new ArrayList<>();
        List<InferenceJob> grouped = new ArrayList<>();
        for (InferenceJob job : jobs) {
            listener.onAdmitted(job);
            if (job.pastDeadline(admittedAt)) {
                listener.onOutcome(runner.timedOut(job, admittedAt)); // no work starts after its deadline
            } else if (job.task().generates() && job.params().numBeams() == 1) {
                joining.add(job);
            } else {
                grouped.add(job);
            }
        }
        if (!grouped.isEmpty()) {
            // beam search, match and embed: run to the end now, as a group
            List<InferenceRunner.Outcome> outcomes = runner.run(grouped, new TokenSink() {
                @Override
                public void onToken(InferenceJob job, int index, int tokenId, String text) {
                    listener.onToken(job, index, tokenId, text);
                }

                @Override
                public boolean isCancelled(InferenceJob job) {
                    return listener.isCancelled(job);
                }
            });
            outcomes.forEach(listener::onOutcome);
        }
        if (joining.isEmpty()) {
            return;
        }
        List<InferenceRunner.Outcome> failures = new ArrayList<>();
        List<InferenceRunner.Prepared> ready = runner.prepareGeneration(joining, failures);
        failures.forEach(listener::onOutcome);
        if (ready.isEmpty()) {
            return;
        }
        List<Blip2Model.GenerationRequest> requests = new ArrayList<>(ready.size());
        List<GenerationParams> params = new ArrayList<>(ready.size());
        List<Blip2Model.RowHandler> handlers = new ArrayList<>(ready.size());
        for (InferenceRunner.Prepared p : ready) {
            InferenceJob job = p.job();
            boolean[] done = new boolean[1]; // one outcome per job, whatever fails where
            requests.add(new Blip2Model.GenerationRequest(p.visualPrompt(), runner.prompt(job)));
            params.add(job.params());
            handlers.add(new Blip2Model.RowHandler() {
                @Override
                public void onToken(int index, int tokenId, String text) {
                    listener.onToken(job, index, tokenId, text);
                }

                @Override
                public boolean isCancelled() {
                    return stops.stop(job, listener.isCancelled(job));
                }

                @Override
                public void onError(RuntimeException cause) {
                    if (!done[0]) {
                        done[0] = true;
                        listener.onOutcome(stops.finish(InferenceRunner.internalFailure(job, cause)));
                    }
                }

                @Override
                public void onFinish(Blip2Model.GenerationResult result) {
                    if (!done[0]) {
                        done[0] = true;
                        listener.onOutcome(stops.finish(new InferenceRunner.Outcome(job, runner.generationResult(p, result, admittedAt), null)));
                    }
                }
            });
        }
        try {
            runner.generationModel().admit(batch, requests, params, handlers);
        } catch (RuntimeException e) {
            // the prefill failed: these rows never joined; the running ones go on
            LOG.error("prefill of {} rows failed", ready.size(), e);
            for (Blip2Model.RowHandler h : handlers) {
                h.onError(e);
            }
        }
    }

    private void step() {
        int rows = batch.size();
        try {
            batch.step();
        } catch (RuntimeException e) {
            LOG.error("decode step of {} rows failed", rows, e);
            batch.abort(e); // each row reports the failure as its outcome
            return;
        }
        listener.onStep(rows);
        runner.pauseAfterStep();
    }

    /**
     * Stops taking jobs, finishes the ones submitted (queued and running), then ends the thread; waits up to
     * {@code timeoutMs} for that.
     */
    public void close(long timeoutMs) throws InterruptedException {
        closing = true;
        thread.join(timeoutMs);
    }

    /** Asks the thread to finish what it has and end, without waiting. */
    @Override
    public void close() {
        closing = true;
    }
}
