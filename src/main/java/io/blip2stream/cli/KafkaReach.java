package io.blip2stream.cli;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterOptions;

import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * What every command that talks to Kafka does first: quiets the Kafka client's own log (a broker that is not there
 * is dozens of WARN lines a second), then asks the broker for its cluster within the command's {@code --timeout},
 * and stops with one line saying what to do when there is none.
 */
final class KafkaReach {
    private KafkaReach() {}

    /**
     * Keeps the Kafka client's log to its errors for this command. Call before any Kafka client is made (the
     * logger reads its level when it is created).
     */
    static void quiet() {
        System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka", "error");
    }

    /** Returns once a broker at {@code bootstrap} answers; else a {@link Main.UserError} of one line. */
    static void check(String bootstrap, int timeoutS) {
        quiet();
        int ms = (int) Math.max(1000, Math.min(Integer.MAX_VALUE, timeoutS * 1000L));
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", bootstrap, "request.timeout.ms", ms,
                "default.api.timeout.ms", ms, "socket.connection.setup.timeout.ms", Math.min(ms, 10_000),
                "socket.connection.setup.timeout.max.ms", Math.min(ms, 10_000), "reconnect.backoff.max.ms", 1000))) {
            admin.describeCluster(new DescribeClusterOptions().timeoutMs(ms)).nodes().get(ms + 1000L, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new Main.UserError("interrupted while looking for the Kafka broker at " + bootstrap);
        } catch (ExecutionException | TimeoutException | RuntimeException e) {
            throw new Main.UserError("no Kafka broker at " + bootstrap + " within " + timeoutS + " s (is `serve` running? it starts "
                    + "one in-process; else give --bootstrap-servers or BLIP2_KAFKA_BOOTSTRAP_SERVERS)");
        }
    }
}
