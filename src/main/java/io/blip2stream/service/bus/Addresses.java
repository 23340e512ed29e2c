package io.blip2stream.service.bus;

import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.InferenceRunner;
import io.vertx.core.Vertx;

/** The event-bus addresses between the verticles, named in one place, and the codecs of what travels on them. */
public final class Addresses {
    /** InferenceJob in, InferenceRunner.Outcome back: this node's inference workers (local only). */
    public static final String INFERENCE = "blip2.inference";
    /** OutboundRecord in, an empty reply once Kafka acknowledged it: this node's result publisher (local only). */
    public static final String PUBLISH = "blip2.publish";
    /**
     * What happens to a request, published to the whole cluster for whoever follows it (the request tracker, the
     * tokens topic): RequestEvent (queued, running, done with its result, failed) and TokenEvent, one route, so that
     * a request's tokens and its result arrive in the order the worker made them.
     */
    public static final String REQUEST_EVENTS = "blip2.request-events";
    /**
     * TokenEvent or RequestEvent from a worker thread, sent locally to the relay that publishes it to the cluster:
     * a clustered publish from a worker completes on the worker's own context, which is busy until its batch ends.
     */
    public static final String RELAY = "blip2.relay";


    private Addresses() {}

    /** Local-only delivery for what carries images and results inside one node. */
    public static io.vertx.core.eventbus.DeliveryOptions local(long timeoutMs) {
        return new io.vertx.core.eventbus.DeliveryOptions().setLocalOnly(true).setSendTimeout(timeoutMs);
    }

    /**
     * Registers the codecs, once per Vert.x instance: jobs, outcomes and records stay on their node (no copy);
     * token and request events cross the cluster as JSON (and are not copied locally either).
     */
    public static void registerCodecs(Vertx vertx) {
        var bus = vertx.eventBus();
        bus.registerDefaultCodec(InferenceJob.class, new LocalCodec<>(InferenceJob.class));
        bus.registerDefaultCodec(WorkerReply.class, new LocalCodec<>(WorkerReply.class));
        bus.registerDefaultCodec(OutboundRecord.class, new LocalCodec<>(OutboundRecord.class));
        bus.registerDefaultCodec(TokenEvent.class, new JsonCodec<>(TokenEvent.class));
        bus.registerDefaultCodec(RequestEvent.class, new JsonCodec<>(RequestEvent.class));
    }
}
