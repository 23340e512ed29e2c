package io.blip2stream.service;

import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.internal.VertxInternal;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertFalse;

/** The detector the service tests rely on does see a blocked event loop (so their "none blocked" can fail). */
class BlockedThreadDetectionTest {
    @Test
    void aBlockedEventLoopIsSeen() throws Exception {
        Vertx vertx = Vertx.vertx(new VertxOptions().setBlockedThreadCheckInterval(100).setMaxEventLoopExecuteTime(300)
                .setMaxEventLoopExecuteTimeUnit(TimeUnit.MILLISECONDS));
        List<String> blocked = new CopyOnWriteArrayList<>();
        ((VertxInternal) vertx).blockedThreadChecker().setThreadBlockedHandler(e -> {
            if (e.thread().getName().contains("eventloop")) {
                blocked.add(e.toString());
            }
        });
        try {
            vertx.runOnContext(v -> {
                try {
                    Thread.sleep(800); // what model work on the event loop would do
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            Thread.sleep(1200);
            assertFalse(blocked.isEmpty(), "the checker reports the blocked event loop");
        } finally {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }
}
