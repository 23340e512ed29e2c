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
import io.blip2stream.service.protocol.JsonInput;
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
 * ML_PREDICT): {@code GET /v1/models}, {@code POST /v1/chat/completions} (answered, or streamed as chunks ending
 * in {@code data: [DONE]}) and {@code POST /v1/embeddings}. What a conversation asks BLIP-2 is {@link ChatCompletions}' to say; the request then goes
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

    /**
     * Embeddings on the retrieval checkpoint: texts ({@code input}) to one embedding each, an image (an
     * {@code image_url} part in {@code messages}, as vLLM takes multimodal embeddings) to its query embeddings.
     */
    void embeddings(RoutingContext ctx) {
        admit(ctx, "embed", this::prepareEmbeddings, PreparedEmbeddings::job, (p, claim) -> {
            InferenceJob job = p.job();
            ctx.response().closeHandler(v -> job.cancellation().cancel());
            if (ctx.response().closed()) {
                job.cancellation().cancel();
            }
            int tokens = job.retrieval().textIds().stream().mapToInt(ids -> ids.length).sum();
            http.submit(job, claim).onComplete(r -> {
                if (r.failed()) {
                    RequestError e = r.cause() instanceof RequestError re ? re : new RequestError(RequestError.INTERNAL, r.cause().toString());
                    HttpApi.error(ctx, HttpApi.status(e.code()), e.code(), e.getMessage());
                } else if (!ctx.response().ended() && !ctx.response().closed()) {
                    ctx.response().putHeader("content-type", "application/json")
                            .end(ChatCompletions.embeddings(p.model(), r.result(), p.base64(), tokens).toString());
                }
            });
        });
    }

    /** An embeddings request read and validated. */
    private record PreparedEmbeddings(String model, boolean base64, InferenceJob job) {}

    private Parsed<PreparedEmbeddings> prepareEmbeddings(byte[] bytes) {
        ChatCompletions.EmbeddingsRequest r = ChatCompletions.parseEmbeddings(readJson(bytes, "an embeddings request"));
        String model = http.decoder.texts().retrievalModel();
        if (model == null || !model.equals(r.model())) {
            throw new Refused(404, "model_not_found", "the model " + ClientText.quote(r.model()) + " does not embed here; "
                    + (model == null ? "no retrieval checkpoint is loaded" : "GET /v1/models lists " + ClientText.quote(model) + " for embeddings"));
        }
        int p = http.decoder.texts().embeddingSize();
        if (r.dimensions() != null && r.dimensions() != p) {
            throw new RequestError(RequestError.INVALID_PARAMS, "dimensions must be " + p + ", this checkpoint's embedding size "
                    + "(its embeddings cannot be shortened)");
        }
        com.fasterxml.jackson.databind.node.ArrayNode texts = ResultJson.JSON.createArrayNode();
        r.texts().forEach(texts::add);
        byte[] inline = inlineImage(r.image());
        return new Parsed<>(new RequestDecoder.Fields(UUID.randomUUID().toString(), "embed", inline, null, null, texts, null, false,
                null, inline == null ? r.image() : null), job -> new PreparedEmbeddings(r.model(), r.base64(), job));
    }

    /** A request read and validated: what the conversation asks, and the job it makes. */
    private record Prepared(ChatCompletions.Request request, InferenceJob job) {}

    void chatCompletions(RoutingContext ctx) {
        admit(ctx, null, this::prepare, Prepared::job, (p, claim) -> answer(ctx, p, claim));
    }

    /**
     * What every request of this API goes through before it runs: a place in flight (or 429 at once), the body read
     * and validated off the event loop by {@code prepare}, its id claimed; then {@code run}. A refusal on the way is
     * answered, and the place given back.
     */
    private <T> void admit(RoutingContext ctx, String task, Prepare<T> prepare, java.util.function.Function<T, InferenceJob> jobOf,
                           java.util.function.BiConsumer<T, io.blip2stream.cluster.RequestStore.Claim> run) {
        if (!http.tryReserve()) {
            http.metrics.request(task, "overloaded");
            ctx.response().putHeader("Retry-After", "1");
            HttpApi.error(ctx, 429, "overloaded", "the service is at capacity; try again shortly");
            return;
        }
        long accepted = System.nanoTime();
        Buffer body = ctx.get(RequestBody.BODY);
        byte[] bytes = body == null ? new byte[0] : body.getBytes();
        http.vertx().executeBlocking(() -> prepare.read(bytes), false)
                .compose(parsed -> http.reader.job(parsed.fields(), accepted).map(parsed.with())).onComplete(ar -> {
            if (ar.failed()) {
                refused(ctx, ar.cause());
                return;
            }
            T p = ar.result();
            InferenceJob job = jobOf.apply(p);
            http.claim(job, "http", http.access.principal(ctx.request().headers(), ctx.request().query())).onComplete(c -> {
                if (c.failed() || c.result().stored() != null) { // a fresh id: never answered before
                    http.release();
                    claimFailed(ctx, c.failed() ? c.cause() : null, job);
                    return;
                }
                run.accept(p, c.result().claim());
            });
        });
    }

    /** Reads a request's body to its fields (on a worker thread); the ingress's reader makes the job. */
    private interface Prepare<T> {
        Parsed<T> read(byte[] body);
    }

    /** A request's fields, and what it becomes with their job. */
    private record Parsed<T>(RequestDecoder.Fields fields, java.util.function.Function<InferenceJob, T> with) {}

    /** A request refused before it ran (the place it took given back): its status and code, or 500 for a bug of ours. */
    private void refused(RoutingContext ctx, Throwable e) {
        http.release();
        if (e instanceof Refused r) {
            HttpApi.error(ctx, r.status, r.code, r.getMessage());
            return;
        }
        RequestError re;
        if (e instanceof RequestError x) {
            re = x;
        } else { // a bug of ours, not the client's
            HttpVerticle.log().error("an OpenAI API request could not be read", e);
            re = new RequestError(RequestError.INTERNAL, "the request could not be read: " + e.getClass().getSimpleName());
        }
        http.rejected(null, null, "http", re);
        HttpApi.error(ctx, HttpApi.status(re.code()), re.code(), re.getMessage());
    }

    /** The id could not be claimed (the store failed, or, never for a fresh id, it was used before). */
    private static void claimFailed(RoutingContext ctx, Throwable cause, InferenceJob job) {
        RequestError e = cause == null ? new RequestError(RequestError.DUPLICATE_ID, "request id " + job.id() + " was used before")
                : cause instanceof RequestError re ? re
                : new RequestError(RequestError.INTERNAL, "the cluster's request store failed: " + cause.getClass().getSimpleName());
        HttpApi.error(ctx, HttpApi.status(e.code()), e.code(), e.getMessage());
    }

    private static JsonNode readJson(byte[] bytes, String what) {
        if (bytes.length == 0) {
            throw new RequestError(RequestError.INVALID_REQUEST, "send " + what + " as JSON");
        }
        return JsonInput.read(bytes, "the body", RequestError.INVALID_JSON);
    }

    /** An image_url's bytes when it is a data: URL; null when there is none, or it is fetched (http(s), file:). */
    private static byte[] inlineImage(String url) {
        return url != null && ChatCompletions.isDataUrl(url) ? RequestDecoder.base64Image("image_url", url) : null;
    }

    /** Reads the request (a worker thread: JSON and base64); the reader checks and tokenizes it. */
    private Parsed<Prepared> prepare(byte[] bytes) {
        ChatCompletions.Request r = ChatCompletions.parse(readJson(bytes, "a chat completion request"));
        String model = http.decoder.texts().generationModel();
        if (model == null) {
            throw new Refused(404, "model_not_found", "no chat model is loaded here (only a retrieval checkpoint)");
        }
        if (!model.equals(r.model())) {
            throw new Refused(404, "model_not_found", "the model " + ClientText.quote(r.model()) + " is not served here; "
                    + "GET /v1/models lists " + ClientText.quote(model));
        }
        byte[] inline = inlineImage(r.image());
        return new Parsed<>(new RequestDecoder.Fields(UUID.randomUUID().toString(), r.task(), inline, null, r.question(), null,
                r.params(), false, null, inline == null ? r.image() : null), job -> new Prepared(r, job));
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
