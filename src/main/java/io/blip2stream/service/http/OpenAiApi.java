package io.blip2stream.service.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.service.bus.TokenEvent;
import io.blip2stream.service.lifecycle.RequestTracker;
import io.blip2stream.service.protocol.ChatCompletions;
import io.blip2stream.service.protocol.ClientText;
import io.blip2stream.service.protocol.ErrorJson;
import io.blip2stream.service.protocol.RequestDecoder;
import io.blip2stream.service.protocol.ResultJson;
import io.blip2stream.service.protocol.StopStrings;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.RoutingContext;

import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * The OpenAI-compatible API, for the clients people already use (LangChain4j, Spring AI, the OpenAI SDKs, Flink's
 * ML_PREDICT): {@code GET /v1/models} and {@code POST /v1/chat/completions}, answered or streamed as chunks ending
 * in {@code data: [DONE]}. What a conversation asks BLIP-2 is {@link ChatCompletions}' to say; the request then goes
 * the way of every HTTP request (the same bearer tokens, origins, limits, overload answer, ownership and
 * {@code RequestLifecycle}). Errors are OpenAI's shape, {@code {"error": {"message", "type", "param", "code"}}}.
 */
final class OpenAiApi {
    private final HttpVerticle http;
    private final long started = System.currentTimeMillis() / 1000;

    OpenAiApi(HttpVerticle http) {
        this.http = http;
    }

    /** A request refused before it ran: its status and this service's error code. */
    private static final class Refused extends RuntimeException {
        final int status;
        final String code;

        Refused(int status, String code, String message) {
            super(message);
            this.status = status;
            this.code = code;
        }
    }

    /** The models loaded: the generation checkpoint (chat) and the retrieval one, by their folder's name. */
    void models(RoutingContext ctx) {
        ctx.response().putHeader("content-type", "application/json").end(ChatCompletions.models(ids(), started).toString());
    }

    private List<String> ids() {
        List<String> ids = new ArrayList<>();
        if (http.decoder.texts().generationModel() != null) {
            ids.add(http.decoder.texts().generationModel());
        }
        if (http.decoder.texts().retrievalModel() != null) {
            ids.add(http.decoder.texts().retrievalModel());
        }
        return ids;
    }

    /** A request read and validated: what the conversation asks, and the job it makes. */
    private record Prepared(ChatCompletions.Request request, InferenceJob job) {}

    void chatCompletions(RoutingContext ctx) {
        if (!http.tryReserve()) {
            http.metrics.request(null, "overloaded");
            ctx.response().putHeader("Retry-After", "1");
            HttpApi.error(ctx, 429, "overloaded", "the service is at capacity; try again shortly");
            return;
        }
        long accepted = System.nanoTime();
        Buffer body = ctx.get(RequestBody.BODY);
        byte[] bytes = body == null ? new byte[0] : body.getBytes();
        http.vertx().executeBlocking(() -> prepare(bytes, accepted), false).onComplete(ar -> {
            if (ar.failed()) {
                http.release();
                Throwable e = ar.cause();
                if (e instanceof Refused r) {
                    HttpApi.error(ctx, r.status, r.code, r.getMessage());
                    return;
                }
                RequestError re;
                if (e instanceof RequestError x) {
                    re = x;
                } else { // a bug of ours, not the client's
                    HttpVerticle.log().error("a chat completion request could not be read", e);
                    re = new RequestError(RequestError.INTERNAL, "the request could not be read: " + e.getClass().getSimpleName());
                }
                http.rejected(null, null, "http", re);
                HttpApi.error(ctx, HttpApi.status(re.code()), re.code(), re.getMessage());
                return;
            }
            Prepared p = ar.result();
            http.claim(p.job(), "http", http.access.principal(ctx.request().headers(), ctx.request().query())).onComplete(c -> {
                if (c.failed() || c.result().stored() != null) { // a fresh id: never answered before
                    http.release();
                    RequestError e = !c.failed() ? new RequestError(RequestError.DUPLICATE_ID, "request id " + p.job().id() + " was used before")
                            : c.cause() instanceof RequestError re ? re
                            : new RequestError(RequestError.INTERNAL, "the cluster's request store failed: " + c.cause().getClass().getSimpleName());
                    HttpApi.error(ctx, HttpApi.status(e.code()), e.code(), e.getMessage());
                    return;
                }
                answer(ctx, p, c.result().claim());
            });
        });
    }

    /** Reads, checks and tokenizes the request (a worker thread: JSON, base64 and the tokenizer). */
    private Prepared prepare(byte[] bytes, long accepted) throws Exception {
        if (bytes.length == 0) {
            throw new RequestError(RequestError.INVALID_REQUEST, "send a chat completion request as JSON");
        }
        JsonNode n;
        try {
            n = ResultJson.JSON.readTree(bytes);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new RequestError(RequestError.INVALID_JSON, "the body is not JSON: " + ClientText.detail(e.getOriginalMessage()));
        }
        ChatCompletions.Request r = ChatCompletions.parse(n);
        String model = http.decoder.texts().generationModel();
        if (model == null) {
            throw new Refused(404, "model_not_found", "no chat model is loaded here (only a retrieval checkpoint)");
        }
        if (!model.equals(r.model())) {
            throw new Refused(404, "model_not_found", "the model " + ClientText.quote(r.model()) + " is not served here; "
                    + "GET /v1/models lists " + ClientText.quote(model));
        }
        if (!ChatCompletions.isDataUrl(r.image())) {
            throw new Refused(400, "unsupported_image_url", "image_url must be a data: URL (data:image/png;base64,...); "
                    + "images by URL are not fetched yet");
        }
        byte[] image = RequestDecoder.base64Image("image_url", r.image());
        InferenceJob job = http.decoder.validate(new RequestDecoder.Fields(UUID.randomUUID().toString(), r.task(), image, null,
                r.question(), null, r.params(), false, null), accepted);
        return new Prepared(r, job);
    }

    /**
     * Runs the request, following its tokens: streamed, each token's text (held back while it could begin a stop
     * string) is a chunk; either way a stop string ends the answer and stops its generation.
     */
    private void answer(RoutingContext ctx, Prepared p, io.blip2stream.cluster.RequestStore.Claim claim) {
        InferenceJob job = p.job();
        ChatCompletions.Request r = p.request();
        String id = "chatcmpl-" + job.id();
        long created = System.currentTimeMillis() / 1000;
        String model = r.model();
        StopStrings stops = new StopStrings(r.stop());
        int promptTokens = job.generation().promptIds().length + http.decoder.texts().visualPromptTokens();
        HttpServerResponse res = ctx.response();
        if (r.stream()) {
            res.setChunked(true).putHeader("content-type", "text/event-stream").putHeader("cache-control", "no-cache")
                    .putHeader("x-accel-buffering", "no");
            res.setWriteQueueMaxSize(http.config.http().writeQueueMaxBytes());
            data(res, ChatCompletions.chunk(id, created, model, ChatCompletions.delta("assistant", ""), null).toString());
        }
        RequestTracker.Listener l = new RequestTracker.Listener() {
            @Override
            public void token(TokenEvent t) {
                String shown = stops.add(t.text());
                if (stops.stopped()) {
                    job.cancellation().cancel(); // a stop string: no more tokens are needed
                }
                if (r.stream() && !shown.isEmpty()) {
                    if (res.writeQueueFull()) {
                        job.cancellation().cancel(); // a client that does not read is let go
                        ctx.request().connection().close();
                        return;
                    }
                    data(res, ChatCompletions.chunk(id, created, model, ChatCompletions.delta(null, shown), null).toString());
                }
            }

            // the request's own events end it, not the worker's reply, which may overtake the last tokens
            @Override
            public void done(ObjectNode result) {
                http.tracker.unfollow(job.id(), this);
                finish(ctx, p, id, created, stops, promptTokens, result);
            }

            @Override
            public void failed(String code, String message) {
                http.tracker.unfollow(job.id(), this);
                if (r.stream()) {
                    data(res, ErrorJson.of(HttpApi.status(code), code, message).toString());
                    end(res);
                } else {
                    HttpApi.error(ctx, HttpApi.status(code), code, message);
                }
            }
        };
        http.tracker.follow(job.id(), l);
        res.closeHandler(v -> {
            http.tracker.unfollow(job.id(), l);
            job.cancellation().cancel(); // the client left before its answer
        });
        if (res.closed()) { // it left while the request was read and claimed: the handler above never runs
            http.tracker.unfollow(job.id(), l);
            job.cancellation().cancel();
        }
        http.submit(job, claim); // how it ends comes as the request's events (a worker that fails to answer included)
    }

    /** The answer: whole, or the held-back text, the finish reason, the usage and [DONE] at the end of the stream. */
    private static void finish(RoutingContext ctx, Prepared p, String id, long created, StopStrings stops, int promptTokens,
                               ObjectNode result) {
        ChatCompletions.Request r = p.request();
        HttpServerResponse res = ctx.response();
        String text = stops.stopped() ? stops.answer() : result.path("text").asText("");
        String finish = ChatCompletions.finishReason(result.path("finish_reason").asText("eos"), stops.stopped());
        ChatCompletions.Usage usage = new ChatCompletions.Usage(promptTokens, result.path("token_ids").size());
        if (!r.stream()) {
            if (!res.ended() && !res.closed()) {
                res.putHeader("content-type", "application/json")
                        .end(ChatCompletions.completion(id, created, r.model(), text, finish, usage).toString());
            }
            return;
        }
        // what the client has not seen: text held back for a stop string that did not come, and what only the whole
        // answer decodes (bytes of a character the tokens never completed, which it shows as U+FFFD)
        String seen = stops.shown();
        String rest = !stops.stopped() && text.startsWith(seen) ? text.substring(seen.length()) : stops.rest();
        if (!rest.isEmpty()) {
            data(res, ChatCompletions.chunk(id, created, r.model(), ChatCompletions.delta(null, rest), null).toString());
        }
        data(res, ChatCompletions.chunk(id, created, r.model(), ChatCompletions.delta(null, null), finish).toString());
        if (r.includeUsage()) {
            data(res, ChatCompletions.usageChunk(id, created, r.model(), usage).toString());
        }
        end(res);
    }

    private static void data(HttpServerResponse res, String json) {
        if (!res.ended() && !res.closed()) {
            res.write("data: " + json + "\n\n");
        }
    }

    private static void end(HttpServerResponse res) {
        if (!res.ended() && !res.closed()) {
            res.write("data: [DONE]\n\n");
            res.end();
        }
    }
}
