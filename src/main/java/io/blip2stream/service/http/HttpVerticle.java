package io.blip2stream.service.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.cluster.RequestStore;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.RequestEvent;
import io.blip2stream.service.bus.TokenEvent;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.lifecycle.RequestLifecycle;
import io.blip2stream.service.lifecycle.RequestReader;
import io.blip2stream.service.lifecycle.RequestTracker;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.blip2stream.service.protocol.ClientText;
import io.blip2stream.service.protocol.RequestDecoder;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.handler.StaticHandler;
import io.vertx.kafka.admin.KafkaAdminClient;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * HTTP and WebSocket, on one event loop: health and metrics, the WebSocket {@code /v1/stream}, the HTTP API
 * ({@code POST /v1/caption}, {@code POST /v1/ask}, {@code GET /v1/requests/{id}}), the OpenAI-compatible API
 * ({@code GET /v1/models}, {@code POST /v1/chat/completions}) and the web page at {@code /}.
 * It keeps the {@link RequestTracker}, fed by the token and request events of the event bus, so any request
 * (from Kafka or from a client) can be followed. Interactive requests beyond {@code http.max_in_flight} are
 * refused at once.
 */
public final class HttpVerticle extends VerticleBase {
    private static final Logger LOG = LoggerFactory.getLogger(HttpVerticle.class);

    final ServiceConfig config;
    private final String bootstrapServers;
    final ServiceMetrics metrics;
    private final BooleanSupplier modelsLoaded;
    /** {@code GET /v1/info}'s body, made once at start ({@link io.blip2stream.service.protocol.ServiceInfo}). */
    private final io.vertx.core.buffer.Buffer info;
    private final String infoTag;
    private final BooleanSupplier consumerAssigned;
    final RequestDecoder decoder;
    /** Fields to jobs, images by reference fetched (made at start: its connections are this verticle's). */
    RequestReader reader;
    final RequestTracker tracker;
    final Access access;
    private KafkaAdminClient admin;
    private HttpServer server;
    private volatile boolean kafkaUp;
    /** HTTP and WebSocket requests being answered on this node. */
    int interactiveInFlight;
    /** open WebSockets per token fingerprint (only when tokens are configured) */
    private final Map<String, Integer> socketsByPrincipal = new java.util.HashMap<>();

    final RequestStore store;
    private RequestLifecycle lifecycle;

    /**
     * @param consumerAssigned whether the Kafka consumer has had its first assignment (ready means it takes records)
     * @param store            the cluster's memory of requests; null: this node's tracker only
     */
    public HttpVerticle(ServiceConfig config, String bootstrapServers, ServiceMetrics metrics, BooleanSupplier modelsLoaded,
                        BooleanSupplier consumerAssigned, RequestDecoder decoder, RequestStore store,
                        com.fasterxml.jackson.databind.node.ObjectNode info) {
        this.info = io.vertx.core.buffer.Buffer.buffer(info.toString()); // encoded once, not per request on the event loop
        this.infoTag = "\"" + Integer.toHexString(info.hashCode()) + "\"";
        this.consumerAssigned = consumerAssigned;
        this.store = store;
        this.config = config;
        this.bootstrapServers = bootstrapServers;
        this.metrics = metrics;
        this.modelsLoaded = modelsLoaded;
        this.decoder = decoder;
        this.tracker = new RequestTracker(config.requests().retentionMs(), config.requests().maxEntries());
        this.access = new Access(config.http(), config.httpHost());
        removeStaleUploads(); // here, on the thread that deploys, not on the event loop
    }

    io.vertx.core.Vertx vertx() {
        return vertx;
    }

    public int actualPort() {
        return server.actualPort();
    }

    @Override
    public Future<?> start() {
        lifecycle = new RequestLifecycle(vertx, context, config.inference().requestTimeoutMs(), metrics, store);
        reader = new RequestReader(vertx, decoder, config);
        admin = KafkaAdminClient.create(vertx, config.kafka().admin(bootstrapServers, Map.of("request.timeout.ms", "3000",
                "default.api.timeout.ms", "5000")));
        probeKafka();
        vertx.setPeriodic(2000, t -> probeKafka());
        vertx.setPeriodic(10_000, t -> tracker.expire(System.currentTimeMillis()));
        vertx.eventBus().consumer(Addresses.REQUEST_EVENTS, m -> {
            if (m.body() instanceof TokenEvent t) {
                tracker.onToken(t);
            } else if (m.body() instanceof RequestEvent e) {
                tracker.onEvent(e);
            }
        });

        ServiceConfig.Http h = config.http();
        Router router = Router.router(vertx);
        router.get("/health/live").handler(ctx -> ctx.json(new JsonObject().put("status", "UP")));
        router.get("/health/ready").handler(ctx -> {
            // ready: it answers HTTP and takes records from Kafka; after a crash the consumer group gives the
            // partitions back only once the dead member's session expired, and until then this node takes none
            boolean models = modelsLoaded.getAsBoolean();
            boolean consumer = consumerAssigned.getAsBoolean();
            boolean ready = models && kafkaUp && consumer;
            ctx.response().setStatusCode(ready ? 200 : 503);
            ctx.json(new JsonObject().put("status", ready ? "UP" : "DOWN")
                    .put("models", models ? "loaded" : "loading").put("kafka", kafkaUp ? "up" : "down")
                    .put("consumer", consumer ? "assigned" : "joining"));
        });
        router.get("/metrics").handler(ctx -> ctx.response()
                .putHeader("content-type", "text/plain; version=0.0.4; charset=utf-8").end(metrics.scrape()));
        HttpApi api = new HttpApi(this);
        // the records' JSON Schemas: published documentation, as a schema registry fetches it (no token)
        router.get("/v1/schemas").handler(HttpVerticle::schemaList);
        router.get("/v1/schemas/:name").handler(HttpVerticle::schema);
        router.route("/v1/*").handler(api::guard);
        RequestBody body = new RequestBody(h.maxMessageBytes(), h.bodyTimeoutMs()); // in memory: nothing on disk, ever
        router.post("/v1/caption").handler(body).handler(ctx -> api.generate(ctx, "caption"));
        router.post("/v1/ask").handler(body).handler(ctx -> api.generate(ctx, "vqa"));
        router.get("/v1/requests/:id").handler(api::status);
        router.get("/v1/info").handler(ctx -> {
            if (infoTag.equals(ctx.request().getHeader("If-None-Match"))) {
                ctx.response().setStatusCode(304).putHeader("ETag", infoTag).end();
                return;
            }
            ctx.response().putHeader("content-type", "application/json").putHeader("ETag", infoTag).end(info);
        });
        OpenAiApi openai = new OpenAiApi(this);
        router.get("/v1/models").handler(openai::models);
        router.post("/v1/chat/completions").handler(body).handler(openai::chatCompletions);
        router.post("/v1/embeddings").handler(body).handler(openai::embeddings);
        router.route("/v1/*").handler(ctx -> HttpApi.error(ctx, 404, "not_found", "no such endpoint: " + ctx.request().method() + " "
                + ClientText.quote(ctx.request().path())));
        router.route("/*").handler(StaticHandler.create("webroot").setCachingEnabled(false));
        router.route().failureHandler(ctx -> {
            int status = ctx.statusCode() > 0 ? ctx.statusCode() : 500;
            if (ctx.failure() != null && status >= 500) {
                LOG.error("{} {} failed", ctx.request().method(), ctx.request().path(), ctx.failure());
            }
            String code = switch (status) {
                case 413 -> RequestError.RECORD_TOO_LARGE;
                case 400 -> RequestError.INVALID_REQUEST;
                case 404 -> "not_found";
                default -> status >= 500 ? RequestError.INTERNAL : "http_" + status;
            };
            String message = status == 413 ? "the body is larger than " + h.maxMessageBytes() + " bytes"
                    : status >= 500 ? "the request failed on the server" : "request failed with " + status;
            HttpApi.error(ctx, status, code, message);
        });

        HttpServerOptions opts = new HttpServerOptions()
                .setMaxWebSocketFrameSize(h.maxFrameBytes())
                .setMaxWebSocketMessageSize(h.maxMessageBytes())
                .setIdleTimeout(h.idleTimeoutS())
                .setHandle100ContinueAutomatically(true)
                // HTTP/1 from the first byte (no HTTP/2 prior-knowledge sniffing): a connection that sends nothing is
                // a connection, and its header deadline runs
                .setHttp2ClearTextEnabled(false)
                // form fields (prompt, question, params) up to what a prompt may be; the image is a file part
                .setMaxFormAttributeSize(1 << 20);
        if (h.sendBufferBytes() > 0) {
            opts.setSendBufferSize(h.sendBufferBytes());
        }
        if (h.tls()) {
            // HTTPS and wss:// on the same port; a handshake must end within the header deadline too
            opts.setSsl(true).setKeyCertOptions(new io.vertx.core.net.PemKeyCertOptions().setCertPath(h.tlsCertFile()).setKeyPath(h.tlsKeyFile()))
                    .setEnabledSecureTransportProtocols(java.util.Set.of("TLSv1.2", "TLSv1.3"))
                    .setSslHandshakeTimeout(h.headerTimeoutMs()).setSslHandshakeTimeoutUnit(java.util.concurrent.TimeUnit.MILLISECONDS);
        }
        return vertx.createHttpServer(opts)
                .connectionHandler(conn -> {
                    headerDeadline(conn);
                    conn.closeHandler(v -> headersArrived(conn.remoteAddress())); // its timer goes with it
                })
                .webSocketHandshakeHandler(hs -> {
                    headersArrived(hs.remoteAddress()); // an upgrade: the WebSocket's own rules apply from here
                    if (!"/v1/stream".equals(hs.path())) {
                        hs.reject(404);
                        return;
                    }
                    int refused = access.check(hs.headers(), hs.query());
                    if (refused != 0) {
                        hs.reject(refused);
                        return;
                    }
                    String principal = access.principal(hs.headers(), hs.query());
                    if (principal != null) {
                        int open = socketsByPrincipal.getOrDefault(principal, 0);
                        if (open >= h.maxSocketsPerToken()) {
                            metrics.request("websocket", "overloaded");
                            hs.reject(429); // before the upgrade: this token has its sockets
                            return;
                        }
                        socketsByPrincipal.merge(principal, 1, Integer::sum);
                        hs.accept().onFailure(e -> socketClosed(principal));
                    } else {
                        hs.accept();
                    }
                })
                .webSocketHandler(ws -> new StreamSocket(this, ws, access.principal(ws.headers(), ws.query())).start())
                .requestHandler(req -> {
                    io.vertx.core.http.HttpConnection conn = req.connection();
                    headersArrived(conn.remoteAddress());
                    req.response().endHandler(v -> {
                        if (!req.response().closed()) {
                            headerDeadline(conn); // kept alive: the next request's headers are due in time too
                        }
                    });
                    router.handle(req);
                })
                .listen(config.httpPort(), config.httpHost())
                .onSuccess(s -> server = s);
    }

    /**
     * Per connection (by its remote address: a WebSocket handshake does not show its connection), the timer that
     * closes it unless a request's headers arrive in time (slow-header clients).
     */
    private final Map<String, Long> headerTimers = new java.util.HashMap<>();

    /**
     * A connection must send a request's headers within {@code http.header_timeout_ms} of opening, and of each
     * response's end while it is kept alive: a client that trickles its headers, or opens connections and sends
     * nothing, is closed (the idle timeout alone lets one byte every few minutes hold a connection for ever).
     */
    private void headerDeadline(io.vertx.core.http.HttpConnection conn) {
        String key = String.valueOf(conn.remoteAddress());
        Long old = headerTimers.put(key, vertx.setTimer(config.http().headerTimeoutMs(), t -> {
            headerTimers.remove(key);
            metrics.request("http", "header_timeout");
            conn.close();
        }));
        if (old != null) {
            vertx.cancelTimer(old);
        }
    }

    /** A request's headers (or a WebSocket handshake) arrived on the connection from {@code remote}. */
    private void headersArrived(io.vertx.core.net.SocketAddress remote) {
        Long t = headerTimers.remove(String.valueOf(remote));
        if (t != null) {
            vertx.cancelTimer(t);
        }
    }

    /** Deletes what older versions left in data/uploads (request bodies are read in memory now). */
    private void removeStaleUploads() {
        java.nio.file.Path dir = config.dataDir().resolve("uploads");
        if (!java.nio.file.Files.isDirectory(dir)) {
            return;
        }
        try (var files = java.nio.file.Files.list(dir)) {
            files.forEach(f -> {
                try {
                    java.nio.file.Files.deleteIfExists(f);
                } catch (java.io.IOException e) {
                    LOG.warn("could not delete the stale upload {}: {}", f, e.toString());
                }
            });
            java.nio.file.Files.deleteIfExists(dir);
        } catch (java.io.IOException e) {
            LOG.warn("could not clean {}: {}", dir, e.toString());
        }
    }

    private void probeKafka() {
        admin.describeCluster().onComplete(ar -> kafkaUp = ar.succeeded() && !ar.result().getNodes().isEmpty());
    }

    /** A socket of {@code principal} closed (null: an open service, nothing counted). */
    void socketClosed(String principal) {
        if (principal != null) {
            socketsByPrincipal.computeIfPresent(principal, (k, n) -> n <= 1 ? null : n - 1);
        }
    }

    /** Whether one more interactive request would be over the limit (then it is refused at once). */
    boolean overloaded() {
        return interactiveInFlight >= config.http().maxInFlight();
    }

    /**
     * Takes one of the {@code http.max_in_flight} places for a request about to be validated, or false when none
     * is left. The place is taken at once, not when the request is submitted: requests arriving together while
     * others validate cannot all pass the check (measured before: 10 at once with a limit of 4). {@link #submit}
     * uses the place; a request refused after validation gives it back ({@link #release}).
     */
    boolean tryReserve() {
        if (overloaded()) {
            return false;
        }
        interactiveInFlight++;
        return true;
    }

    /** Gives back a place taken by {@link #tryReserve} for a request that was not submitted. */
    void release() {
        interactiveInFlight--;
    }

    /**
     * How an interactive request's id stands in the cluster ({@link RequestStore#relate}): {@code stored} is the state
     * of a finished request of the same content and owner (its answer is this one's; nothing runs), else null (the
     * id is this request's now). Fails with {@code duplicate_id} when the id belongs to another request. The store
     * unreachable: this node's own knowledge decides.
     */
    record Claimed(RequestStore.Claim claim, com.fasterxml.jackson.databind.JsonNode stored) {}

    Future<Claimed> claim(InferenceJob job, String source, String owner) {
        RequestStore.Claim c = new RequestStore.Claim(job.id(), job.task().wireName(), source, null, job.contentDigest(), owner);
        RequestTracker.Entry local = tracker.get(job.id());
        if (local != null && tracker.known(job.id()) && !local.status().finished()) {
            return Future.failedFuture(duplicate(job.id()));
        }
        if (store == null) {
            return local != null && tracker.known(job.id()) ? Future.failedFuture(duplicate(job.id()))
                    : Future.succeededFuture(new Claimed(c, null));
        }
        return store.claim(c, context).timeout(RequestStore.TIMEOUT_MS, TimeUnit.MILLISECONDS).compose(prev -> switch (store.relate(c, prev)) {
            case NEW -> Future.succeededFuture(new Claimed(c, null));
            case ABANDONED -> store.takeOver(c, context).map(v -> new Claimed(c, null));
            case SAME_CONTENT_ANSWERED -> Future.succeededFuture(new Claimed(c, prev));
            default -> Future.failedFuture(duplicate(job.id()));
        }, e -> {
            LOG.warn("the cluster's request store did not answer for {} ({}): going on", job.id(), e.toString());
            return local != null && tracker.known(job.id()) ? Future.failedFuture(duplicate(job.id()))
                    : Future.succeededFuture(new Claimed(c, null));
        });
    }

    private static RequestError duplicate(String id) {
        return new RequestError(RequestError.DUPLICATE_ID, "a request with id " + ClientText.quote(id)
                + " exists already (live, or finished with other content)");
    }

    /**
     * Runs an interactive request whose id it claimed ({@link #claim}) through the {@link RequestLifecycle}: announced,
     * handed to a worker, answered or failed (the tracker and every follower learn it from the worker's events), and
     * remembered. The returned future has the result JSON.
     */
    Future<ObjectNode> submit(InferenceJob job, RequestStore.Claim claim) { // uses the place of tryReserve
        tracker.own(job.id(), claim.owner()); // at once, not only when the event comes back: a follow may come first
        return lifecycle.infer(job, claim.source(), claim.owner()).compose(o -> {
            interactiveInFlight--;
            if (o.error() != null) {
                lifecycle.failed(job.id(), job.task().wireName(), o.error(), false); // announced by its worker
                lifecycle.remember(claim, null, o.error(), false);
                return Future.failedFuture(o.error());
            }
            ObjectNode json = lifecycle.done(o);
            lifecycle.remember(claim, json, null, false);
            return Future.succeededFuture(json);
        });
    }

    /** A request this node refused before it ran is still a request that failed: the tracker remembers it. */
    void rejected(String id, String task, String source, RequestError e) {
        lifecycle.failed(id, task, e, true);
    }

    @Override
    public Future<?> stop() {
        Future<Void> closed = server == null ? Future.succeededFuture() : server.close();
        return closed.eventually(() -> {
            reader.close();
            return admin.close();
        });
    }

    /** {@code GET /v1/schemas}: the schemas' names, titles and where each is. */
    private static void schemaList(io.vertx.ext.web.RoutingContext ctx) {
        io.vertx.core.json.JsonArray data = new io.vertx.core.json.JsonArray();
        for (String name : io.blip2stream.service.protocol.Schemas.NAMES) {
            data.add(new JsonObject().put("name", name).put("url", "/v1/schemas/" + name)
                    .put("description", io.blip2stream.service.protocol.Schemas.json(name).path("description").asText()));
        }
        ctx.json(new JsonObject().put("data", data));
    }

    /** {@code GET /v1/schemas/{name}}: one schema, as application/schema+json. */
    private static void schema(io.vertx.ext.web.RoutingContext ctx) {
        byte[] s = io.blip2stream.service.protocol.Schemas.bytes(ctx.pathParam("name"));
        if (s == null) {
            HttpApi.error(ctx, 404, "not_found", "no schema " + io.blip2stream.service.protocol.ClientText.quote(ctx.pathParam("name"))
                    + "; GET /v1/schemas lists them");
            return;
        }
        ctx.response().putHeader("content-type", "application/schema+json").end(io.vertx.core.buffer.Buffer.buffer(s));
    }

    static Logger log() {
        return LOG;
    }

    static boolean isGet(io.vertx.core.http.HttpServerRequest r) {
        return r.method() == HttpMethod.GET;
    }
}
