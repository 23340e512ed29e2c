package io.blip2stream.engine;

import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.model.generation.RowListener;

import java.util.function.Consumer;

/**
 * A job's row in the model's generation: the model's {@link RowListener} closed over the job. Its tokens and the
 * question whether to stop go to the job's {@link TokenSink}; the row's end, a result or a failure, becomes the
 * job's one {@link InferenceRunner.Outcome}, however often and wherever the model reports it.
 */
final class JobRow implements RowListener {
    private final InferenceRunner runner;
    private final InferenceRunner.Prepared prepared;
    private final TokenSink sink;
    private final long admittedNanos;
    private final boolean pausePerToken;
    private final Consumer<InferenceRunner.Outcome> end;
    private boolean ended;

    /**
     * @param admittedNanos when the job left the queue (its result's queue time)
     * @param pausePerToken pause {@code step_delay_ms} after each token (a batch that runs to its end; a continuous
     *                      batch pauses once a step)
     * @param end           where the job's outcome goes, once
     */
    JobRow(InferenceRunner runner, InferenceRunner.Prepared prepared, TokenSink sink, long admittedNanos, boolean pausePerToken,
           Consumer<InferenceRunner.Outcome> end) {
        this.runner = runner;
        this.prepared = prepared;
        this.sink = sink;
        this.admittedNanos = admittedNanos;
        this.pausePerToken = pausePerToken;
        this.end = end;
    }

    InferenceJob job() {
        return prepared.job();
    }

    @Override
    public void onToken(int index, int tokenId, String text) {
        sink.onToken(prepared.job(), index, tokenId, text);
        if (pausePerToken) {
            runner.pauseAfterStep();
        }
    }

    @Override
    public boolean isCancelled() {
        return sink.isCancelled(prepared.job());
    }

    @Override
    public void onFinish(GenerationResult result) {
        end(new InferenceRunner.Outcome(prepared.job(), runner.generationResult(prepared, result, admittedNanos), null));
    }

    @Override
    public void onError(RuntimeException cause) {
        end(InferenceRunner.internalFailure(prepared.job(), cause));
    }

    /** Whether the job has had its outcome. */
    boolean ended() {
        return ended;
    }

    private void end(InferenceRunner.Outcome outcome) {
        if (!ended) {
            ended = true;
            end.accept(outcome);
        }
    }
}
