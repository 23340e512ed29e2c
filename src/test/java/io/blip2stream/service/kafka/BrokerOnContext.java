package io.blip2stream.service.kafka;

import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/** A real broker with topics, and a Vert.x context to run the ingress's classes on as the ingress does. */
final class BrokerOnContext implements AutoCloseable {
    final EmbeddedKafka broker;
    final Vertx vertx;
    final Context context;

    private BrokerOnContext(EmbeddedKafka broker, Vertx vertx) {
        this.broker = broker;
        this.vertx = vertx;
        this.context = vertx.getOrCreateContext();
    }

    /** Starts a broker with its data in {@code dir}, creates {@code topics}, and a Vert.x instance. */
    static BrokerOnContext start(Path dir, List<NewTopic> topics) throws Exception {
        EmbeddedKafka broker = new EmbeddedKafka(dir, 0, 0).start();
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", broker.bootstrapServers()))) {
            admin.createTopics(topics).all().get();
        }
        return new BrokerOnContext(broker, Vertx.vertx());
    }

    /** Runs {@code f} on the context, as the ingress's event loop would, and waits for its result. */
    <T> T on(Supplier<Future<T>> f) throws Exception {
        CompletableFuture<T> out = new CompletableFuture<>();
        context.runOnContext(v -> f.get().onComplete(ar -> {
            if (ar.succeeded()) {
                out.complete(ar.result());
            } else {
                out.completeExceptionally(ar.cause());
            }
        }));
        return out.get(90, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws Exception {
        vertx.close().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
        broker.close();
    }
}
