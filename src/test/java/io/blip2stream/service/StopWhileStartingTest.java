package io.blip2stream.service;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A node told to stop while it starts (Kubernetes sends SIGTERM to a pod that is slow to start, or scales down
 * while it scales up) goes no further: it opens neither HTTP nor the Kafka consumer, so it never joins the consumer
 * group only to leave it again. Each join and leave is a rebalance that moves partitions, and stalls them, on every
 * other node; RebalanceIT found nodes that were stopped while starting joining the group seconds later, then leaving.
 */
@Tag("broker")
class StopWhileStartingTest {
    @TempDir
    Path tmp;

    @Test
    void aStopDuringStartUpEndsItBeforeHttpOrKafkaOpen() throws Exception {
        Blip2Service service = new Blip2Service(ServiceHarness.config(tmp.resolve("data"), Map.of()));
        CompletableFuture<Void> started = CompletableFuture.runAsync(() -> {
            try {
                service.start();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        // the cluster joined: the models load next (seconds), then HTTP and the Kafka consumer would open
        long until = System.currentTimeMillis() + 120_000;
        while (service.vertx() == null && !started.isDone() && System.currentTimeMillis() < until) {
            Thread.sleep(2);
        }
        assertTrue(service.vertx() != null, "the node joined its cluster");
        long t0 = System.nanoTime();
        service.stop(); // returns once start() has given up and what it started is stopped
        long stopMs = (System.nanoTime() - t0) / 1_000_000;
        assertNull(started.get(10, TimeUnit.SECONDS), "start() returned, without an error");
        assertEquals(-1, service.httpPort(), "HTTP never opened");
        assertNull(service.vertx(), "Vert.x (and with it the cluster member) is closed");
        org.junit.jupiter.api.Assertions.assertFalse(service.kafkaIngressStarted(), "the Kafka consumer never started, so it never joined the group");
        System.out.println("stop during start-up took " + stopMs + " ms");
    }
}
