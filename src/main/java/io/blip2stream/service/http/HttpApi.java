package io.blip2stream.service.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.service.bus.RequestEvent;
import io.blip2stream.service.bus.TokenEvent;
import io.blip2stream.service.lifecycle.RequestTracker;
import io.blip2stream.service.protocol.ClientText;
import io.blip2stream.service.protocol.ErrorJson;
import io.blip2stream.service.protocol.JsonInput;
import io.blip2stream.service.protocol.RequestDecoder;
import io.blip2stream.service.protocol.ResultJson;
import io.vertx.core.Future;
import io.vertx.core.MultiMap;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.RoutingContext;

import java.util.UUID;

/**
 * The HTTP API: {@code POST /v1/caption} and {@code POST /v1/ask} (multipart with an {@code image} file and
 * fields, or JSON with a base64 image) answer with the result, or with {@code Accept: text/event-stream} stream
 * it as Server-Sent Events ({@code accepted}, {@code token}..., then {@code done} or {@code error});
 * {@code GET /v1/requests/{id}} tells a request's status and result. Errors are {@link ErrorJson} (OpenAI's shape:
 * {@code {"error":{"message","type","param","code"}}}) with a 4xx (or 5xx) status.
 */
final class HttpApi {
    private final HttpVerticle http;

    HttpApi(HttpVerticle http) {
        this.http = http;
    }

    /** Origins and bearer tokens for everything under /v1, and CORS for allowed browsers. */
    void guard(RoutingContext ctx) {
        MultiMap h = ctx.request().headers();
        String origin = h.get("Origin");
        if (origin != null && http.access.originAllowed(origin, h.get("Host"))) {
            ctx.response().putHeader("Access-Control-Allow-Origin", origin).putHeader("Vary", "Origin");
        }
        if (ctx.request().method() == HttpMethod.OPTIONS) {
            if (origin != null && !http.access.originAllowed(origin, h.get("Host"))) {
                error(ctx, 403, "forbidden", "origin " + origin + " is not allowed");
                return;
            }
            ctx.response().putHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
                    .putHeader("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept")
                    .putHeader("Access-Control-Max-Age", "600").setStatusCode(204).end();
            return;
        }
        int refused = http.access.check(h, ctx.request().query());
        if (refused == 403) {
            error(ctx, 403, "forbidden", "origin " + origin + " is not allowed");
        } else if (refused == 421) {
            error(ctx, 421, "misdirected_request", "this service does not answer to the host " + ClientText.quote(h.get("Host"))
                    + " (an open service answers localhost, IP addresses and http.allowed_hosts)");
        } else if (refused == 401) {
            ctx.response().putHeader("WWW-Authenticate", "Bearer");
            error(ctx, 401, "unauthorized", "a bearer token is required");
        } else {
            ctx.next();
        }
    }

    void generate(RoutingContext ctx, String task) {
        if (!http.tryReserve()) {
            http.metrics.request(task, "overloaded");
            ctx.response().putHeader("Retry-After", "1");
            error(ctx, 429, "overloaded", "the service is at capacity; try again shortly");
            return;
        }
        long accepted = System.nanoTime();
        boolean sse = String.valueOf(ctx.request().getHeader("Accept")).contains("text/event-stream");
        fields(ctx).compose(f -> http.reader.job(new RequestDecoder.Fields(f.id() == null ? UUID.randomUUID().toString() : f.id(), task,
                        f.image(), f.prompt(), f.question(), null, f.params(), false, f.deadlineMs(), f.imageUrl()), accepted))
                .onComplete(ar -> {
                    if (ar.failed()) {
                        RequestError e = ar.cause() instanceof RequestError re ? re
                                : new RequestError(RequestError.INVALID_REQUEST, ar.cause().getMessage());
                        http.release();
                        http.rejected(null, task, "http", e);
                        error(ctx, status(e.code()), e.code(), e.getMessage());
                        return;
                    }
                    InferenceJob job = ar.result();
                    http.claim(job, "http", principal(ctx)).onComplete(c -> {
                        if (c.failed()) {
                            http.release();
                            RequestError e = c.cause() instanceof RequestError re ? re
                                    : new RequestError(RequestError.INTERNAL, "the cluster's request store failed: " + c.cause().getClass().getSimpleName());
                            error(ctx, status(e.code()), e.code(), e.getMessage());
                        } else if (c.result().stored() != null) {
                            http.release();
                            replay(ctx, job, c.result().stored(), sse);
                        } else if (sse) {
                            stream(ctx, job, c.result().claim());
                        } else {
                            ctx.response().closeHandler(v -> job.cancellation().cancel()); // the client left before its answer
                            if (ctx.response().closed()) {
                                job.cancellation().cancel(); // it left while the request was read: the handler never runs
                            }
                            http.submit(job, c.result().claim()).onComplete(r -> {
                                if (r.succeeded()) {
                                    ctx.response().putHeader("content-type", "application/json").end(r.result().toString());
                                } else {
                                    RequestError e = (RequestError) r.cause();
                                    error(ctx, status(e.code()), e.code(), e.getMessage());
                                }
                            });
                        }
                    });
                });
    }

    /** The same request sent again (same id, content and owner) after it finished: its stored answer, run no more. */
    private void replay(RoutingContext ctx, InferenceJob job, com.fasterxml.jackson.databind.JsonNode stored, boolean sse) {
        JsonNode result = stored.get("result");
        JsonNode err = stored.path("error");
        if (sse) {
            HttpServerResponse res = ctx.response();
            res.setChunked(true).putHeader("content-type", "text/event-stream").putHeader("cache-control", "no-cache");
            event(res, "accepted", ResultJson.JSON.createObjectNode().put("type", "accepted").put("id", job.id()));
            if (result != null && result.isObject()) {
                ObjectNode d = ResultJson.JSON.createObjectNode().put("type", "done");
                d.setAll((ObjectNode) result);
                event(res, "done", d);
            } else {
                event(res, "error", ResultJson.JSON.createObjectNode().put("type", "error").put("id", job.id())
                        .put("code", err.path("code").asText(RequestError.INTERNAL)).put("message", err.path("message").asText("")));
            }
            res.end();
        } else if (result != null && result.isObject()) {
            ctx.response().putHeader("content-type", "application/json").end(result.toString());
        } else {
            String code = err.path("code").asText(RequestError.INTERNAL);
            error(ctx, status(code), code, err.path("message").asText(""));
        }
    }

    /** Server-Sent Events: accepted, then a token event per token, then done (or error). */
    private void stream(RoutingContext ctx, InferenceJob job, io.blip2stream.cluster.RequestStore.Claim claim) {
        HttpServerResponse res = ctx.response();
        res.setChunked(true).putHeader("content-type", "text/event-stream").putHeader("cache-control", "no-cache")
                .putHeader("x-accel-buffering", "no");
        res.setWriteQueueMaxSize(http.config.http().writeQueueMaxBytes());
        event(res, "accepted", ResultJson.JSON.createObjectNode().put("type", "accepted").put("id", job.id()));
        RequestTracker.Listener l = new RequestTracker.Listener() {
            @Override
            public void token(TokenEvent t) {
                if (res.writeQueueFull()) {
                    job.cancellation().cancel(); // a client that does not read is let go
                    ctx.request().connection().close();
                    return;
                }
                event(res, "token", ResultJson.JSON.createObjectNode().put("type", "token").put("id", t.id()).put("index", t.index())
                        .put("token_id", t.tokenId()).put("text", t.text()));
            }

            @Override
            public void done(ObjectNode result) {
                ObjectNode d = ResultJson.JSON.createObjectNode().put("type", "done");
                d.setAll(result);
                event(res, "done", d);
                res.end();
            }

            @Override
            public void failed(String code, String message) {
                event(res, "error", ResultJson.JSON.createObjectNode().put("type", "error").put("id", job.id()).put("code", code)
                        .put("message", message));
                res.end();
            }
        };
        http.tracker.follow(job.id(), l);
        res.closeHandler(v -> {
            http.tracker.unfollow(job.id(), l);
            job.cancellation().cancel();
        });
        if (res.closed()) { // it left while the request was read and claimed: the handler above never runs
            http.tracker.unfollow(job.id(), l);
            job.cancellation().cancel();
        }
        http.submit(job, claim);
    }

    /** The caller's identity (a token's fingerprint), or null on an open service. */
    private String principal(RoutingContext ctx) {
        return http.access.principal(ctx.request().headers(), ctx.request().query());
    }

    private static final String FOREIGN = "the request belongs to another client";

    private static void event(HttpServerResponse res, String name, ObjectNode data) {
        if (!res.ended() && !res.closed()) {
            res.write("event: " + name + "\ndata: " + data + "\n\n");
        }
    }

    /**
     * The request's fields from a multipart form (an image file) or a JSON body (a base64 image), as
     * {@link RequestBody} read them into memory.
     */
    private Future<RequestDecoder.Fields> fields(RoutingContext ctx) {
        String type = String.valueOf(ctx.request().getHeader("Content-Type")).toLowerCase(java.util.Locale.ROOT);
        if (type.startsWith("multipart/form-data") || type.startsWith("application/x-www-form-urlencoded")) {
            MultiMap form = ctx.request().formAttributes();
            JsonNode params;
            try {
                params = form.get("params") == null || form.get("params").isBlank() ? null
                        : JsonInput.read(form.get("params"), "the form field params (an object such as {\"max_new_tokens\": 20})",
                                RequestError.INVALID_PARAMS);
            } catch (RequestError e) {
                return Future.failedFuture(e);
            }
            java.util.Map<String, io.vertx.core.buffer.Buffer> files = ctx.get(RequestBody.FILES);
            io.vertx.core.buffer.Buffer image = files == null ? null : files.get("image");
            String imageUrl = form.get("image_url") == null || form.get("image_url").isBlank() ? null : form.get("image_url").strip();
            if (image != null && image.length() > 0 && imageUrl != null) {
                return Future.failedFuture(new RequestError(RequestError.INVALID_REQUEST, "the form has both an image file and image_url: send one"));
            }
            if (image == null && imageUrl == null && files != null && !files.isEmpty()) {
                return Future.failedFuture(new RequestError(RequestError.MISSING_IMAGE, "the form has no file field named image (it has "
                        + ClientText.quote(String.join(", ", files.keySet())) + "): name the image's field image, as in curl -F image=@photo.png"));
            }
            if (image == null && imageUrl == null && form.get("image") != null) {
                return Future.failedFuture(new RequestError(RequestError.MISSING_IMAGE, "the form field image is text, not a file: "
                        + "send the file itself, as in curl -F image=@photo.png (with the @), or its address as image_url"));
            }
            Long deadlineMs;
            try {
                deadlineMs = http.decoder.deadlineMs(form.get("deadline_ms"));
            } catch (RequestError e) {
                return Future.failedFuture(e);
            }
            return Future.succeededFuture(new RequestDecoder.Fields(form.get("id"), null, image == null ? null : image.getBytes(),
                    form.get("prompt"), form.get("question"), null, params, false, deadlineMs, imageUrl));
        }
        io.vertx.core.buffer.Buffer body = ctx.get(RequestBody.BODY);
        if (body == null || body.length() == 0) {
            return Future.failedFuture(new RequestError(RequestError.INVALID_REQUEST,
                    "send JSON {\"image\": \"<base64>\", ...} or {\"image_url\": \"https://...\", ...}, or a multipart form with an image file"));
        }
        byte[] bytes = body.getBytes();
        return http.vertx().executeBlocking(() -> http.decoder.fromJson(JsonInput.read(bytes, "the body", RequestError.INVALID_JSON), null), false);
    }

    void status(RoutingContext ctx) {
        String id = ctx.pathParam("id");
        RequestTracker.Entry e = http.tracker.get(id);
        String me = principal(ctx);
        if (e != null && !Access.mayFollow(me, e.owner())) {
            error(ctx, 403, "forbidden", FOREIGN);
            return;
        }
        if (e == null || !http.tracker.known(id)) {
            // not seen on this node since it started: the cluster's store may know it
            if (http.store == null) {
                error(ctx, 404, "not_found", "no request " + id + " is known");
                return;
            }
            http.store.get(id, http.vertx().getOrCreateContext()).onComplete(ar -> {
                if (ar.failed() || ar.result() == null) {
                    error(ctx, 404, "not_found", "no request " + id + " is known");
                    return;
                }
                if (!Access.mayFollow(me, ar.result().path("owner").asText(null))) {
                    error(ctx, 403, "forbidden", FOREIGN);
                    return;
                }
                ObjectNode o = ResultJson.JSON.createObjectNode().put("id", id);
                for (String field : java.util.List.of("status", "task", "source", "result", "error")) {
                    if (ar.result().has(field)) {
                        o.set(field, ar.result().get(field)); // the store's bookkeeping (owner, member, digest) stays inside
                    }
                }
                ctx.response().putHeader("content-type", "application/json").end(o.toString());
            });
            return;
        }
        ObjectNode o = ResultJson.JSON.createObjectNode();
        o.put("id", id);
        o.put("status", e.status().wireName());
        if (e.task() != null) {
            o.put("task", e.task());
        }
        if (e.source() != null) {
            o.put("source", e.source());
        }
        if (e.status() == RequestEvent.Status.RUNNING || e.status() == RequestEvent.Status.QUEUED) {
            o.put("tokens_so_far", e.tokenCount());
        }
        if (e.result() != null) {
            o.set("result", e.result());
        }
        if (e.errorCode() != null) {
            o.putObject("error").put("code", e.errorCode()).put("message", e.errorMessage());
        }
        ctx.response().putHeader("content-type", "application/json").end(o.toString());
    }

    static int status(String code) {
        return switch (code) {
            case RequestError.IMAGE_TOO_LARGE, RequestError.RECORD_TOO_LARGE -> 413;
            case RequestError.TIMEOUT -> 504;
            case RequestError.INTERNAL -> 500;
            case RequestError.UNSUPPORTED_TASK -> 422;
            case RequestError.DUPLICATE_ID -> 409;
            default -> 400;
        };
    }

    static void error(RoutingContext ctx, int status, String code, String message) {
        if (ctx.response().ended()) {
            return;
        }
        ctx.response().setStatusCode(status).putHeader("content-type", "application/json").end(ErrorJson.of(status, code, message).toString());
    }
}
