package io.blip2stream.service.verticle;

import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.RequestEvent;
import io.blip2stream.service.bus.TokenEvent;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;

/**
 * Publishes to the cluster, from an event loop, the token and request events the inference workers send it
 * locally, on one address in the order they came: a request's tokens, then its result. A clustered publish made on a
 * worker's context would be delivered only when that worker's batch ends; from here tokens leave as they are
 * generated.
 */
public final class EventRelayVerticle extends VerticleBase {
    @Override
    public Future<?> start() {
        return vertx.eventBus().localConsumer(Addresses.RELAY, m -> {
            Object body = m.body();
            if (body instanceof TokenEvent || body instanceof RequestEvent) {
                vertx.eventBus().publish(Addresses.REQUEST_EVENTS, body); // one sender, one address: in order
            }
        }).completion();
    }
}
