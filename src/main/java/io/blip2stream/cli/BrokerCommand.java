package io.blip2stream.cli;

import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.kafka.EmbeddedKafka;
import io.blip2stream.service.kafka.Topics;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * The broker {@code serve} starts in-process when no Kafka is configured, as a process of its own: several nodes on
 * one machine against one Kafka, or the broker's CPU outside the service's process (as a deployment has it).
 */
/** The {@code broker} command: runs a single-node Kafka broker (KRaft) for local runs and demos. */
@Command(name = "broker", mixinStandardHelpOptions = true,
        description = {"Run a single-node Kafka broker (KRaft), the one serve starts in-process when no Kafka is configured, as a process of its own.",
                "It creates the service's topics. Use it for several serve nodes on one machine (BLIP2_KAFKA_BOOTSTRAP_SERVERS=localhost:PORT) "
                        + "and for load tests with the broker outside the service's process. Its data survives restarts; SIGTERM stops it."})
final class BrokerCommand implements Callable<Integer> {
    @Option(names = "--port", paramLabel = "PORT", description = "the client listener on localhost (default: kafka.embedded.port, 9092)")
    Integer port;

    @Option(names = "--controller-port", paramLabel = "PORT", description = "the KRaft controller listener (default: kafka.embedded.controller_port, 9093)")
    Integer controllerPort;

    @Option(names = "--data-dir", paramLabel = "DIR", description = "where its logs live (default: DATA_DIR/kafka, as serve's)")
    Path dataDir;

    @Option(names = "--config", paramLabel = "FILE", description = "a YAML file overriding conf/application.yaml (topics, partitions)")
    Path config;

    @Override
    public Integer call() throws Exception {
        ServiceConfig c;
        try {
            c = ConfigLoader.load(config, System.getenv(), Map.of());
        } catch (IllegalArgumentException e) {
            throw new Main.UserError(e.getMessage());
        }
        Path dir = dataDir != null ? dataDir : c.dataDir().resolve("kafka");
        EmbeddedKafka broker = new EmbeddedKafka(dir, port != null ? port : c.kafka().embeddedPort(),
                controllerPort != null ? controllerPort : c.kafka().embeddedControllerPort());
        try {
            broker.start();
        } catch (java.io.IOException e) {
            throw new Main.UserError(e.getMessage());
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            broker.close();
            stopped.countDown();
        }, "blip2-broker-shutdown"));
        Topics.ensure(broker.bootstrapServers(), c.kafka());
        System.out.println("Kafka broker on " + broker.bootstrapServers() + ", data in " + dir.toAbsolutePath()
                + "; serve nodes: BLIP2_KAFKA_BOOTSTRAP_SERVERS=" + broker.bootstrapServers());
        System.out.flush();
        stopped.await();
        return 0;
    }
}
