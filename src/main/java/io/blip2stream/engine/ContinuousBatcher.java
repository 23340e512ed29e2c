package io.blip2stream.engine;

import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.RowListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Iteration-level scheduling of one device's runner, on a thread of its own: between two decode steps, the
 * requests that arrived are admitted (their images through the vision encoder and the Q-Former in one batch,
 * their prompts through the language model in one prefill, their first token picked at once) and join the
 * running batch; a request leaves it the step it finishes. At most {@code maxBatchSize} rows decode together;
 * waiting requests are held a little for company, so that they share the vision encoder and the prefill (how
 * long: {@link AdmissionPolicy}).
 *
 * <p>A job whose deadline has passed when it is admitted is not started (finish_reason timeout, no tokens); a
 * running row stops at its next token once its deadline passes or its owner cancels it, and leaves the batch.
 *
 * <p>Beam search (its beams move in lockstep), match and embed run as groups of their own when they are
 * admitted, between two steps of the running batch.
 *
 * <p>{@link #submit} may be called from any thread; everything else happens on the batcher's thread, which is
 * where the {@link Scheduler.Listener} is called.
 */
public final class ContinuousBatcher extends SchedulerThread {
    private static final Logger LOG = LoggerFactory.getLogger(ContinuousBatcher.class);

    private final InferenceRunner runner;
    private final int maxBatchSize;
    private final AdmissionPolicy policy;
    /** when the oldest arrival waiting to join the running batch was first seen (System.nanoTime), or 0 */
    private long joinWaitingSince;
    private final ContinuousBatch batch;
    private final Stops stops = new Stops(); // why rows stopped early: cancelled or past their deadline
    /** the listener, its rows also stopped once their deadline passes */
    private final TokenSink stopping = stops.stopping(listener);

    public ContinuousBatcher(InferenceRunner runner, String name, int maxBatchSize, long maxWaitMs, Listener listener) {
        this(runner, name, maxBatchSize, maxWaitMs, 0, listener);
    }

    /**
     * @param maxWaitMs     on an idle device, how long a first arrival waits for others at least
     * @param maxJoinWaitMs the longest an arrival is held for company ({@link AdmissionPolicy}; 0: join at the
     *                      next step)
     */
    public ContinuousBatcher(InferenceRunner runner, String name, int maxBatchSize, long maxWaitMs, long maxJoinWaitMs,
                             Listener listener) {
        this(runner, name, maxBatchSize, new AdmissionPolicy(maxWaitMs, maxJoinWaitMs), listener);
    }

    ContinuousBatcher(InferenceRunner runner, String name, int maxBatchSize, AdmissionPolicy policy, Listener listener) {
        super("blip2-decode-" + name, listener);
        this.runner = runner;
        this.maxBatchSize = maxBatchSize;
        this.policy = policy;
        this.batch = runner.generationModel() == null ? new ContinuousBatch(-1) : runner.generationModel().generation().newBatch();
    }

    @Override
    public ContinuousBatcher start() {
        super.start();
        return this;
    }

    @Override
    protected boolean turn() throws InterruptedException {
        List<InferenceJob> admitted = new ArrayList<>();
        if (batch.isEmpty()) {
            InferenceJob first = awaitFirst();
            if (first == null) {
                return !finished();
            }
            admitted.add(first);
            joinWaitingSince = 0;
            // idle: give others a moment to share the vision encoder and the prefill, each within a gap
            // of the one before (a lone request waits one gap), all within a cap
            long gap = policy.idleGapNanos();
            long cap = System.nanoTime() + policy.idleCapNanos();
            while (admitted.size() < maxBatchSize) {
                long left = Math.min(gap, cap - System.nanoTime());
                InferenceJob next = left > 0 ? arrivals().poll(left, TimeUnit.NANOSECONDS) : arrivals().poll();
                if (next == null) {
                    break;
                }
                admitted.add(next);
            }
        } else {
            takeJoining(admitted);
        }
        if (!admitted.isEmpty()) {
            admit(admitted);
            listener.onPassEnd();
        }
        if (!batch.isEmpty()) {
            step();
        }
        return true;
    }

    @Override
    protected void release() {
        if (!batch.isEmpty()) {
            LOG.warn("{} rows running get no result", batch.size());
        }
        batch.close();
    }

    /**
     * Between two steps: the arrivals that join the running batch now. All of them that fit once they fill the free
     * rows or the oldest has waited long enough; none before (the running rows go on decoding meanwhile).
     */
    private void takeJoining(List<InferenceJob> admitted) {
        int free = Math.max(0, maxBatchSize - batch.size());
        if (free == 0 || arrivals().isEmpty()) {
            joinWaitingSince = arrivals().isEmpty() ? 0 : joinWaitingSince;
            return;
        }
        long now = System.nanoTime();
        if (joinWaitingSince == 0) {
            joinWaitingSince = now;
        }
        if (policy.joinNow(arrivals().size(), free, now - joinWaitingSince) || closing()) {
            arrivals().drainTo(admitted, free);
            joinWaitingSince = arrivals().isEmpty() ? 0 : now;
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
            } else if (job.input() instanceof InferenceJob.Generation g && g.params().numBeams() == 1) {
                joining.add(job);
            } else {
                grouped.add(job);
            }
        }
        listener.onPassEnd(); // who is admitted, before the vision encoder and the prefill take their time
        if (!grouped.isEmpty()) {
            // beam search, match and embed: run to the end now, as a group
            List<InferenceRunner.Outcome> outcomes = runner.run(grouped, listener);
            outcomes.forEach(listener::onOutcome);
        }
        if (joining.isEmpty()) {
            return;
        }
        long joinStart = System.nanoTime();
        List<InferenceRunner.Outcome> failures = new ArrayList<>();
        List<InferenceRunner.Prepared> ready = runner.prepareGeneration(joining, failures);
        failures.forEach(listener::onOutcome);
        if (ready.isEmpty()) {
            return;
        }
        List<GenerationRequest> requests = new ArrayList<>(ready.size());
        List<GenerationParams> params = new ArrayList<>(ready.size());
        List<RowListener> rows = new ArrayList<>(ready.size());
        for (InferenceRunner.Prepared p : ready) {
            requests.add(runner.generationRequest(p));
            params.add(p.job().generation().params());
            rows.add(new JobRow(runner, p, stopping, admittedAt, false, o -> listener.onOutcome(stops.finish(o))));
        }
        try {
            runner.generationModel().generation().admit(batch, requests, params, rows);
            policy.admitted(ready.size(), System.nanoTime() - joinStart);
            if (LOG.isDebugEnabled()) {
                LOG.debug("admitted {} rows beside {} running in {} ms", ready.size(), batch.size() - ready.size(),
                        (System.nanoTime() - admittedAt) / 1_000_000);
            }
        } catch (RuntimeException e) {
            // the prefill failed: these rows never joined; the running ones go on
            LOG.error("prefill of {} rows failed", ready.size(), e);
            rows.forEach(r -> r.onError(e));
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
        listener.onPassEnd();
        runner.pauseAfterStep();
    }
}
