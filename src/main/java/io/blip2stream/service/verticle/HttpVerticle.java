package io.blip2stream.service.verticle;

import io.blip2stream.service.metrics.ServiceMetrics;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.kafka.admin.KafkaAdminClient;

import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * HTTP: {@code GET /health/live}, {@code GET /health/ready} (the models are loaded and Kafka answers) and
 * {@code GET /metrics} (Prometheus). The WebSocket and request endpoints join it with the HTTP API.
 */
public final class HttpVerticle extends VerticleBase {
    private final String host;
    private final int port;
    private final String bootstrapServers;
    private final ServiceMetrics metrics;
    private final BooleanSupplier modelsLoaded;
    private KafkaAdminClient admin;
    private HttpServer server;
    private volatile boolean kafkaUp;

    public HttpVerticle(String host, int port, String bootstrapServers, ServiceMetrics metrics, BooleanSupplier modelsLoaded) {
        this.host = host;
        this.port = port;
        this.bootstrapServers = bootstrapServers;
        this.metrics = metrics;
        this.modelsLoaded = modelsLoaded;
    }

    public int actualPort() {
        return server.actualPort();
    }

    @Override
    public Future<?> start() {
        admin = KafkaAdminClient.create(vertx, Map.of("bootstrap.servers", bootstrapServers, "request.timeout.ms", "3000",
                "default.api.timeout.ms", "5000"));
        probeKafka();
        vertx.setPeriodic(2000, t -> probeKafka());
        Router router = Router.router(vertx);
        router.get("/health/live").handler(ctx -> ctx.json(new JsonObject().put("status", "UP")));
        router.get("/health/ready").handler(ctx -> {
            boolean models = modelsLoaded.getAsBoolean();
            boolean ready = models && kafkaUp;
            ctx.response().setStatusCode(ready ? 200 : 503);
            ctx.json(new JsonObject().put("status", ready ? "UP" : "DOWN")
                    .put("models", models ? "loaded" : "loading").put("kafka", kafkaUp ? "up" : "down"));
        });
        router.get("/metrics").handler(ctx -> ctx.response()
                .putHeader("content-type", "text/plain; version=0.0.4; charset=utf-8").end(metrics.scrape()));
        return vertx.createHttpServer().requestHandler(router).listen(port, host).onSuccess(s -> server = s);
    }

    private void probeKafka() {
        admin.describeCluster().onComplete(ar -> kafkaUp = ar.succeeded() && !ar.result().getNodes().isEmpty());
    }

    @Override
    public Future<?> stop() {
        Future<Void> closed = server == null ? Future.succeededFuture() : server.close();
        return closed.eventually(() -> admin.close());
    }
}
