package io.blip2stream.service.lifecycle;

import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.image.ImageFetcher;
import io.blip2stream.service.protocol.RequestDecoder;
import io.vertx.core.Future;
import io.vertx.core.Vertx;

import java.util.concurrent.Callable;

/**
 * The first step of every ingress (Kafka, HTTP, WebSocket, the OpenAI API): a request's fields to a validated
 * {@link InferenceJob}, off the event loop, with its image fetched first when it came by reference. A request with
 * an {@code image_url} is checked whole before anything is fetched ({@link RequestDecoder#check}), so a request
 * refused anyway costs no fetch; the bytes fetched are then validated as an inline image is, and key the
 * visual-prompt cache by their hash as an inline image does. A refusal, wherever it arises, is a
 * {@link RequestError} naming the request's id.
 *
 * <p>One per verticle (its fetcher's connections are that verticle's); close it when the verticle stops.
 */
public final class RequestReader implements AutoCloseable {
    private final Vertx vertx;
    private final RequestDecoder decoder;
    private final ImageFetcher images;

    public RequestReader(Vertx vertx, RequestDecoder decoder, ServiceConfig config) {
        this(vertx, decoder, new ImageFetcher(vertx, config.images(), config.limits().maxImageBytes()));
    }

    public RequestReader(Vertx vertx, RequestDecoder decoder, ImageFetcher images) {
        this.vertx = vertx;
        this.decoder = decoder;
        this.images = images;
    }

    public RequestDecoder decoder() {
        return decoder;
    }

    /** The fields {@code parse} reads (on a worker thread: it may decode base64 or JSON) to a job. */
    public Future<InferenceJob> job(Callable<RequestDecoder.Fields> parse, long acceptedNanos) {
        return vertx.executeBlocking(parse, false).compose(f -> job(f, acceptedNanos));
    }

    /** The fields to a job: validated on a worker thread, after their image is fetched if it is by reference. */
    public Future<InferenceJob> job(RequestDecoder.Fields f, long acceptedNanos) {
        if (f.imageUrl() == null) {
            return vertx.executeBlocking(() -> decoder.validate(f, acceptedNanos), false);
        }
        return vertx.executeBlocking(() -> decoder.check(f), false).compose(id -> images.fetch(f.imageUrl())
                .recover(e -> Future.failedFuture(e instanceof RequestError re ? re.forRequest(id)
                        : new RequestError(RequestError.IMAGE_FETCH_FAILED, "the image could not be fetched: "
                                + e.getClass().getSimpleName()).forRequest(id)))
                .compose(bytes -> vertx.executeBlocking(() -> decoder.validate(f.withImage(bytes).as(id, f.task()), acceptedNanos), false)));
    }

    @Override
    public void close() {
        images.close();
    }
}
