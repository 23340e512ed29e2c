package io.blip2stream.service.bus;

import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.InferenceRunner;
import io.vertx.core.Vertx;

/** The event-bus addresses between the verticles, named in one place, and the codecs of what travels on them. */
public final class Addresses {
    /** InferenceJob in, InferenceRunner.Outcome back: the inference workers (one consumer per device). */
    public static final String INFERENCE = "blip2.inference";
    /** OutboundRecord in, an empty reply once Kafka acknowledged it: the result publisher. */
    public static final String PUBLISH = "blip2.publish";
    /** TokenEvent, published for whoever follows a request (tokens topic, WebSocket clients). */
    public static final String TOKENS = "blip2.token-events";
    /** RequestEvent, published: a request was queued, started, answered or failed. */
    public static final String REQUEST_EVENTS = "blip2.request-events";

    private Addresses() {}

    /** Registers the local codecs; once per Vert.x instance. */
    public static void registerCodecs(Vertx vertx) {
        var bus = vertx.eventBus();
        bus.registerDefaultCodec(InferenceJob.class, new LocalCodec<>(InferenceJob.class));
        bus.registerDefaultCodec(InferenceRunner.Outcome.class, new LocalCodec<>(InferenceRunner.Outcome.class));
        bus.registerDefaultCodec(OutboundRecord.class, new LocalCodec<>(OutboundRecord.class));
        bus.registerDefaultCodec(TokenEvent.class, new LocalCodec<>(TokenEvent.class));
        bus.registerDefaultCodec(io.blip2stream.service.requests.RequestEvent.class,
                new LocalCodec<>(io.blip2stream.service.requests.RequestEvent.class));
    }
}
