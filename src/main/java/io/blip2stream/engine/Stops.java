package io.blip2stream.engine;

import io.blip2stream.model.generation.FinishReason;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Why jobs stop before their end. The model knows one way to stop a row early (it asks before each token whether
 * the row is cancelled); a job stops that way when its owner cancels it or when its deadline passes, and this
 * remembers which came first, so that its result says {@code cancelled} or {@code timeout}.
 */
final class Stops {
    private final Map<InferenceJob, FinishReason> reasons = new IdentityHashMap<>();

    /** True when {@code job} must stop now: {@code cancelled} says whether its owner cancelled it. */
    synchronized boolean stop(InferenceJob job, boolean cancelled) {
        if (reasons.containsKey(job)) {
            return true;
        }
        FinishReason r;
        if (cancelled) {
            r = FinishReason.CANCELLED;
        } else if (job.pastDeadline(System.nanoTime())) {
            r = FinishReason.TIMEOUT;
        } else {
            return false;
        }
        reasons.put(job, r);
        return true;
    }

    /** {@code sink}, its jobs also stopped once their deadline passes. */
    TokenSink stopping(TokenSink sink) {
        return new TokenSink() {
            @Override
            public void onToken(InferenceJob job, int index, int tokenId, String text) {
                sink.onToken(job, index, tokenId, text);
            }

            @Override
            public boolean isCancelled(InferenceJob job) {
                return stop(job, sink.isCancelled(job));
            }
        };
    }

    /** The outcome with the finish reason that stopped its job; forgets the job. */
    synchronized InferenceRunner.Outcome finish(InferenceRunner.Outcome o) {
        FinishReason r = reasons.remove(o.job());
        InferenceResult res = o.result();
        if (r != FinishReason.TIMEOUT || res == null || !(res.output() instanceof InferenceResult.Generated g)
                || g.finishReason() != FinishReason.CANCELLED) {
            return o;
        }
        return new InferenceRunner.Outcome(o.job(), new InferenceResult(res.job(), res.model(),
                new InferenceResult.Generated(g.text(), g.tokenIds(), FinishReason.TIMEOUT), res.timings()), null);
    }
}
