package io.blip2stream.service.bus;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.InferenceResult;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.RequestError;

/**
 * What an inference worker answers for a job, on {@link Addresses#INFERENCE}: how it ended and, for a result, the
 * result's JSON, built once by the worker, which relays the same JSON as the request's {@code done} event. That one
 * JSON object reaches the request tracker, HTTP and Kafka on several event loops: nothing may change it (a reader
 * that adds fields copies it first).
 *
 * @param outcome    the job's result or error
 * @param resultJson the result's JSON ({@code ResultJson}); null when the job failed
 */
public record WorkerReply(InferenceRunner.Outcome outcome, ObjectNode resultJson) {
    public WorkerReply {
        if ((outcome.error() == null) != (resultJson != null)) {
            throw new IllegalArgumentException("a result carries its JSON; an error none");
        }
    }

    /** A job that failed: its error, and no result. */
    public static WorkerReply failed(InferenceRunner.Outcome outcome) {
        return new WorkerReply(outcome, null);
    }

    /** The job's error, or null when it has a result. */
    public RequestError error() {
        return outcome.error();
    }

    /** The job's result, or null when it failed. */
    public InferenceResult result() {
        return outcome.result();
    }
}
