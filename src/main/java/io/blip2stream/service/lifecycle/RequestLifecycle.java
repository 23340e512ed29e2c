package io.blip2stream.service.lifecycle;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.cluster.RequestStore;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.InferenceResult;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.RequestError;
import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.RequestEvent;
import io.blip2stream.service.bus.WorkerReply;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.eventbus.ReplyFailure;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.TimeUnit;

/**
 * A request's life after an ingress took it, the same for every ingress (Kafka, HTTP, WebSocket): announced
 * ({@code queued}), handed to an inference worker, then answered (with the result JSON) or not, counted in the
 * metrics, and remembered in the cluster's request store. How a request that ran ended ({@code done} or
 * {@code failed}) is announced by its worker, after its tokens and on their route, so that every follower on every
 * node hears them in order; this announces what no worker can: the request queued, refused before it ran, or
 * unanswered by its worker. The ingress keeps only what is its own: how the answer reaches its client (a reply, a
 * socket, a Kafka record) and when to remember it.
 *
 * <p>One per verticle, used on that verticle's event loop ({@code context}).
 */
public final class RequestLifecycle {
    private static final Logger LOG = LoggerFactory.getLogger(RequestLifecycle.class);

    private final Vertx vertx;
    private final Context context;
    private final long requestTimeoutMs;
    private final ServiceMetrics metrics;
    private final RequestStore store; // null: no cluster state

    /**
     * @param requestTimeoutMs how long a worker may take to answer ({@code inference.request_timeout_ms})
     */
    public RequestLifecycle(Vertx vertx, Context context, long requestTimeoutMs, ServiceMetrics metrics,
                            RequestStore store) {
        this.vertx = vertx;
        this.context = context;
        this.requestTimeoutMs = requestTimeoutMs;
        this.metrics = metrics;
        this.store = store;
    }

    /**
     * Announces the request as queued and hands it to an inference worker, which announces how it ended. The future
     * never fails: a worker that did not answer in time is the error {@code timeout}, one that did not answer at all
     * {@code internal_error}, and those are announced here.
     *
     * @param source kafka, http or websocket
     * @param owner  who submitted it (a token's fingerprint), or null
     */
    public Future<WorkerReply> infer(InferenceJob job, String source, String owner) {
        vertx.eventBus().publish(Addresses.REQUEST_EVENTS, RequestEvent.queued(job.id(), job.task().wireName(), source, owner));
        return vertx.eventBus().<WorkerReply>request(Addresses.INFERENCE, job, Addresses.local(requestTimeoutMs))
                .map(m -> m.body())
                .recover(e -> {
                    RequestError err = e instanceof ReplyException re && re.failureType() == ReplyFailure.TIMEOUT
                            ? new RequestError(RequestError.TIMEOUT, "no answer within " + requestTimeoutMs + " ms")
                            : new RequestError(RequestError.INTERNAL, "the inference worker did not answer");
                    LOG.warn("request {}: the inference worker did not answer: {}", job.id(), e.toString());
                    vertx.eventBus().publish(Addresses.REQUEST_EVENTS, RequestEvent.failed(job.id(), err.code(), err.getMessage()));
                    return Future.succeededFuture(WorkerReply.failed(new InferenceRunner.Outcome(job, null, err)));
                });
    }

    /**
     * The request answered (its worker announced it): counted with its stages' latencies. Returns its result JSON,
     * as the worker built it.
     */
    public ObjectNode done(WorkerReply reply) {
        InferenceResult r = reply.result();
        metrics.request(r.job().task().wireName(), "ok");
        InferenceResult.Timings timings = r.timings();
        metrics.stage("queued", timings.queuedMs());
        metrics.stage("preprocess", timings.preprocessMs());
        metrics.stage("vision", timings.visionMs());
        metrics.stage("qformer", timings.qformerMs());
        metrics.stage("prefill", timings.prefillMs());
        metrics.stage("decode", timings.decodeMs());
        metrics.stage("total", timings.totalMs());
        return reply.resultJson();
    }

    /**
     * The request failed, before it ran (refused) or while it ran: counted ({@code failed} for the service's own
     * failures, internal or timeout; {@code rejected} for the request's), and announced as failed when
     * {@code announce} (a request refused before it ran; not one whose worker or {@link #infer} announced it, nor one
     * whose id is another request's) and it has an id.
     */
    public void failed(String id, String task, RequestError error, boolean announce) {
        metrics.request(task, RequestError.INTERNAL.equals(error.code()) || RequestError.TIMEOUT.equals(error.code()) ? "failed" : "rejected");
        if (announce && id != null) {
            vertx.eventBus().publish(Addresses.REQUEST_EVENTS, RequestEvent.failed(id, error.code(), error.getMessage()));
        }
    }

    /**
     * How the request ended, in the cluster's request store under its claim. Never fails: a store that does not answer
     * is logged, and the request's answer stands.
     *
     * @param published its answer is written where it goes (a Kafka record's output topic); false for an answer
     *                  another node must still write, and for requests answered by a reply
     */
    public Future<Void> remember(RequestStore.Claim claim, JsonNode result, RequestError error, boolean published) {
        if (store == null) {
            return Future.succeededFuture();
        }
        return store.finished(claim, result, error == null ? null : error.code(), error == null ? null : error.getMessage(), published,
                context).timeout(RequestStore.TIMEOUT_MS, TimeUnit.MILLISECONDS).recover(e -> {
                    LOG.warn("could not record request {} in the cluster: {}", claim.id(), e.toString());
                    return Future.succeededFuture();
                });
    }
}
