package io.blip2stream.service.http;

import io.vertx.core.Handler;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.ext.web.RoutingContext;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads a request's body into memory, bounded in size and in time, before the route's handler runs: a JSON body
 * whole, a multipart form's fields and files (the image) each as bytes. Nothing is written to disk, so a body that
 * never ends or is cut off leaves nothing behind. A body larger than {@code maxBytes} (declared or sent) gets 413;
 * one that has not all arrived within {@code timeoutMs} of the request's start gets 408 and its connection is
 * closed; a malformed one (a multipart part without its boundary, a form field over the limit) gets 400 or 413.
 */
final class RequestBody implements Handler<RoutingContext> {
    /** The JSON (or other non-form) body: a {@link Buffer}. */
    static final String BODY = "blip2.body";
    /** A multipart form's files by field name: {@code Map<String, Buffer>}. */
    static final String FILES = "blip2.files";

    private final long maxBytes;
    private final long timeoutMs;

    RequestBody(long maxBytes, long timeoutMs) {
        this.maxBytes = maxBytes;
        this.timeoutMs = timeoutMs;
    }

    @Override
    public void handle(RoutingContext ctx) {
        HttpServerRequest req = ctx.request();
        String length = req.getHeader("Content-Length");
        if (length != null) {
            try {
                if (Long.parseLong(length.trim()) > maxBytes) {
                    refuse(ctx, 413, "record_too_large", "the body is larger than " + maxBytes + " bytes");
                    return;
                }
            } catch (NumberFormatException e) {
                refuse(ctx, 400, "invalid_request", "Content-Length is not a number");
                return;
            }
        }
        String type = String.valueOf(req.getHeader("Content-Type")).toLowerCase(java.util.Locale.ROOT);
        boolean form = type.startsWith("multipart/form-data") || type.startsWith("application/x-www-form-urlencoded");
        State s = new State();
        s.timer = ctx.vertx().setTimer(timeoutMs, t -> {
            s.done = true;
            refuse(ctx, 408, "request_timeout", "the body did not arrive within " + timeoutMs + " ms");
        });
        if (form) {
            req.setExpectMultipart(true);
            req.uploadHandler(upload -> {
                Buffer file = Buffer.buffer();
                s.files.put(upload.name(), file);
                upload.handler(b -> {
                    if (s.add(b.length())) {
                        file.appendBuffer(b);
                    } else {
                        tooLarge(ctx, s);
                    }
                });
                upload.exceptionHandler(e -> failed(ctx, s, e));
            });
        } else {
            req.handler(b -> {
                if (s.add(b.length())) {
                    s.body.appendBuffer(b);
                } else {
                    tooLarge(ctx, s);
                }
            });
        }
        req.exceptionHandler(e -> failed(ctx, s, e));
        req.endHandler(v -> {
            ctx.vertx().cancelTimer(s.timer);
            if (s.done) {
                return;
            }
            s.done = true;
            ctx.put(BODY, s.body);
            ctx.put(FILES, s.files);
            ctx.next();
        });
    }

    /** One body being read. */
    private final class State {
        final Buffer body = Buffer.buffer();
        final Map<String, Buffer> files = new LinkedHashMap<>();
        long size;
        long timer;
        boolean done;

        boolean add(int n) {
            size += n;
            return !done && size <= maxBytes;
        }
    }

    private void tooLarge(RoutingContext ctx, State s) {
        if (!s.done) {
            s.done = true;
            ctx.vertx().cancelTimer(s.timer);
            s.files.clear();
            refuse(ctx, 413, "record_too_large", "the body is larger than " + maxBytes + " bytes");
        }
    }

    /** The body failed to arrive whole (the client left, or sent a malformed form). */
    private static void failed(RoutingContext ctx, State s, Throwable e) {
        if (s.done) {
            return;
        }
        s.done = true;
        ctx.vertx().cancelTimer(s.timer);
        s.files.clear();
        String m = String.valueOf(e.getMessage());
        boolean tooLarge = m.contains("exceed") || m.contains("too long") || m.contains("too large");
        refuse(ctx, tooLarge ? 413 : 400, tooLarge ? "record_too_large" : "invalid_request",
                tooLarge ? "a form field is too large" : "the body could not be read: it is cut off or malformed");
    }

    /** Answers now, then closes the connection: the rest of the body (if any comes) is not read. */
    private static void refuse(RoutingContext ctx, int status, String code, String message) {
        var res = ctx.response();
        if (res.ended() || res.closed()) {
            ctx.request().connection().close();
            return;
        }
        com.fasterxml.jackson.databind.node.ObjectNode o = io.blip2stream.service.protocol.ErrorJson.of(status, code, message);
        res.setStatusCode(status).putHeader("content-type", "application/json").putHeader("Connection", "close")
                .end(o.toString()).onComplete(ar -> ctx.request().connection().close());
    }
}
