package io.blip2stream.engine;

/**
 * Where one device's jobs wait and run, on a thread of the scheduler's own: {@link ContinuousBatcher} (rows join
 * and leave a running batch between decode steps; the default) or {@link StaticBatcher} (batches that run to
 * their end). The inference worker holds one and knows no batching: it submits jobs and hands what the
 * {@link Listener} hears to the event bus.
 */
public interface Scheduler extends AutoCloseable {

    /**
     * What a scheduler reports about its jobs, on its own thread, in order: the jobs' tokens and whether to stop them
     * (the {@link TokenSink} a runner reports to), and their admissions and outcomes.
     */
    interface Listener extends TokenSink {
        /** The job left the queue: the model works on it now. */
        void onAdmitted(InferenceJob job);

        /** Its owner's cancellation, unless a listener knows more. */
        @Override
        default boolean isCancelled(InferenceJob job) {
            return job.cancelled();
        }

        /** The job's end, a result or an error: exactly once per job submitted. */
        void onOutcome(InferenceRunner.Outcome outcome);

        /** After each decode step (continuous) or each batch (static), the number of rows it ran. */
        default void onStep(int rows) {}

        /**
         * What the scheduler produced since the last call has all been reported, so a listener that hands events
         * to other threads can hand them over together: once a pass (an admission, a decode step) rather than
         * once a token, since each hand-over wakes threads that take the CPU from the model's.
         */
        default void onPassEnd() {}

        /** The scheduler's thread is about to end: every job submitted has had its outcome. */
        default void onStopped() {}
    }

    /**
     * The scheduler {@code inference.batching} names.
     *
     * @param continuous    continuous batching, else static
     * @param maxWaitMs     how long a first arrival on an idle device waits for others
     * @param maxJoinWaitMs continuous batching: the longest an arrival is held for company ({@link AdmissionPolicy})
     */
    static Scheduler of(boolean continuous, InferenceRunner runner, String name, int maxBatchSize, long maxWaitMs,
                        long maxJoinWaitMs, Listener listener) {
        return continuous ? new ContinuousBatcher(runner, name, maxBatchSize, maxWaitMs, maxJoinWaitMs, listener)
                : new StaticBatcher(runner, name, maxBatchSize, maxWaitMs, listener);
    }

    /** Starts the scheduler's thread. */
    Scheduler start();

    /** Queues a job (from any thread); refused once closing. */
    void submit(InferenceJob job);

    /** Jobs waiting to be admitted. */
    int queued();

    /** Stops taking jobs, finishes those submitted, then ends its thread; waits up to {@code timeoutMs} for that. */
    void close(long timeoutMs) throws InterruptedException;

    /** {@link #close(long)} without waiting. */
    @Override
    void close();
}
