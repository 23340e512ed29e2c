package io.blip2stream.service.kafka;

import kafka.server.KafkaConfig;
import kafka.server.KafkaRaftServer;
import kafka.tools.StorageTool;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.utils.Time;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;

/**
 * A real single-node Kafka broker in this process (KRaft: broker and controller in one node), for running the
 * service with nothing else installed and for tests. Its data lives under the given folder and survives restarts.
 */
public final class EmbeddedKafka implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedKafka.class);

    private final Path dir;
    private final int port;
    private final int controllerPort;
    private KafkaRaftServer server;
    /** A listener beside PLAINTEXT (a secured one, for the clients), and the broker settings it needs. */
    private String extraName;
    private String extraProtocol;
    private int extraPort;
    private final Map<String, String> extraSettings = new java.util.LinkedHashMap<>();

    /** @param port the client listener on localhost (0: a free port); controllerPort likewise */
    public EmbeddedKafka(Path dir, int port, int controllerPort) {
        this.dir = dir;
        this.port = port == 0 ? freePort() : port;
        this.controllerPort = controllerPort == 0 ? freePort() : controllerPort;
    }

    public String bootstrapServers() {
        return "localhost:" + port;
    }

    /**
     * Before {@link #start}: a second client listener {@code name} on localhost:{@code listenerPort} speaking
     * {@code protocol} (SSL, SASL_PLAINTEXT, SASL_SSL), with the broker settings it needs ({@code listener.name.NAME.*},
     * {@code sasl.enabled.mechanisms}, ...). The PLAINTEXT listener stays for the broker's own use.
     */
    public synchronized EmbeddedKafka listener(String name, String protocol, int listenerPort, Map<String, String> settings) {
        this.extraName = name.toUpperCase(java.util.Locale.ROOT);
        this.extraProtocol = protocol;
        this.extraPort = listenerPort == 0 ? freePort() : listenerPort;
        this.extraSettings.putAll(settings);
        return this;
    }

    /** The second listener's bootstrap address. */
    public String listenerBootstrapServers() {
        return "localhost:" + extraPort;
    }

    public Path dir() {
        return dir;
    }

    public synchronized EmbeddedKafka start() throws IOException {
        if (server != null) {
            return this;
        }
        for (int p : new int[] {port, controllerPort}) {
            if (inUse(p)) {
                throw new IOException("cannot start the in-process Kafka broker: port " + p
                        + " is in use (set BLIP2_KAFKA_BOOTSTRAP_SERVERS to use a running broker, or another port)");
            }
        }
        Path logs = dir.resolve("logs");
        Files.createDirectories(logs);
        Properties props = new Properties();
        props.put("process.roles", "broker,controller");
        props.put("node.id", "1");
        props.put("listeners", "PLAINTEXT://localhost:" + port + ",CONTROLLER://localhost:" + controllerPort);
        props.put("advertised.listeners", "PLAINTEXT://localhost:" + port);
        props.put("controller.listener.names", "CONTROLLER");
        props.put("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
        props.put("inter.broker.listener.name", "PLAINTEXT");
        props.put("controller.quorum.bootstrap.servers", "localhost:" + controllerPort);
        props.put("log.dirs", logs.toAbsolutePath().toString());
        props.put("offsets.topic.replication.factor", "1");
        props.put("offsets.topic.num.partitions", "5");
        props.put("transaction.state.log.replication.factor", "1");
        props.put("transaction.state.log.min.isr", "1");
        props.put("share.coordinator.state.topic.replication.factor", "1");
        props.put("share.coordinator.state.topic.min.isr", "1");
        props.put("group.initial.rebalance.delay.ms", "0");
        props.put("auto.create.topics.enable", "false");
        props.put("message.max.bytes", String.valueOf(32 << 20));
        props.put("log.retention.hours", "24");
        if (extraName != null) {
            props.put("listeners", props.get("listeners") + "," + extraName + "://localhost:" + extraPort);
            props.put("advertised.listeners", props.get("advertised.listeners") + "," + extraName + "://localhost:" + extraPort);
            props.put("listener.security.protocol.map", props.get("listener.security.protocol.map") + "," + extraName + ":" + extraProtocol);
            props.putAll(extraSettings);
        }
        Path propsFile = dir.resolve("server.properties");
        try (OutputStream out = Files.newOutputStream(propsFile)) {
            props.store(out, "written by blip2-stream for its in-process broker");
        }
        if (!Files.exists(logs.resolve("meta.properties"))) {
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            int rc = StorageTool.execute(new String[] {"format", "-t", Uuid.randomUuid().toString(), "-c",
                    propsFile.toString(), "--standalone"}, new PrintStream(buf, true, StandardCharsets.UTF_8));
            if (rc != 0) {
                throw new IOException("cannot format the in-process Kafka broker's storage: " + buf);
            }
        }
        KafkaRaftServer s = new KafkaRaftServer(KafkaConfig.fromProps(props, false), Time.SYSTEM);
        s.startup();
        server = s;
        waitForPort(port, 30_000);
        if (extraName != null) {
            waitForPort(extraPort, 30_000);
        }
        LOG.info("in-process Kafka broker (KRaft) listening on localhost:{}, data in {}", port, dir.toAbsolutePath());
        return this;
    }

    @Override
    public synchronized void close() {
        if (server != null) {
            server.shutdown();
            server.awaitShutdown();
            server = null;
        }
    }

    private static boolean inUse(int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("localhost", port), 200);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void waitForPort(int port, long timeoutMs) throws IOException {
        long end = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < end) {
            if (inUse(port)) {
                return;
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while waiting for the broker");
            }
        }
        throw new IOException("the in-process Kafka broker did not open port " + port + " within " + timeoutMs + " ms");
    }

    static int freePort() {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new IllegalStateException("no free port", e);
        }
    }
}
