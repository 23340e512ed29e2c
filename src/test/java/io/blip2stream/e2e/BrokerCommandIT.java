package io.blip2stream.e2e;

import io.blip2stream.TestPorts;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code java -jar target/blip2-stream.jar broker}: serve's in-process broker as a process of its own. */
@Tag("e2e")
class BrokerCommandIT {
    @TempDir
    Path tmp;

    @Test
    void aBrokerProcessServesTheTopicsAndKeepsItsDataAcrossARestart() throws Exception {
        int port = TestPorts.free();
        int controller = TestPorts.free();
        Path data = tmp.resolve("kafka");
        String bootstrap = "localhost:" + port;
        Process p = start(port, controller, data);
        try {
            try (Admin admin = Admin.create(Map.<String, Object>of("bootstrap.servers", bootstrap))) {
                Set<String> topics = admin.listTopics().names().get(30, TimeUnit.SECONDS);
                for (String t : List.of("blip2.requests", "blip2.captions", "blip2.answers", "blip2.tokens", "blip2.requests.DLT")) {
                    assertTrue(topics.contains(t), t + " in " + topics);
                }
                assertEquals(3, admin.describeTopics(List.of("blip2.requests")).allTopicNames().get(30, TimeUnit.SECONDS)
                        .get("blip2.requests").partitions().size());
            }
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(Map.of("bootstrap.servers", bootstrap, "acks", "all"),
                    new StringSerializer(), new StringSerializer())) {
                producer.send(new ProducerRecord<>("blip2.captions", 0, "k", "before the restart")).get(30, TimeUnit.SECONDS);
            }
        } finally {
            stop(p);
        }
        assertTrue(p.exitValue() == 0 || p.exitValue() == 143, "stopped by SIGTERM: " + p.exitValue());

        Process again = start(port, controller, data);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(Map.of("bootstrap.servers", bootstrap),
                new StringDeserializer(), new StringDeserializer())) {
            TopicPartition tp = new TopicPartition("blip2.captions", 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            List<String> values = new ArrayList<>();
            long end = System.currentTimeMillis() + 30_000;
            while (values.isEmpty() && System.currentTimeMillis() < end) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
            }
            assertEquals(List.of("before the restart"), values);
        } finally {
            stop(again);
        }
    }

    @Test
    void aPortInUseIsAUsageError() throws Exception {
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0)) {
            CommandLineIT.Run r = CommandLineIT.run("broker", "--port", String.valueOf(taken.getLocalPort()),
                    "--controller-port", String.valueOf(TestPorts.free()), "--data-dir", tmp.resolve("k").toString());
            assertEquals(2, r.exit(), r.err());
            assertTrue(r.err().contains("port " + taken.getLocalPort() + " is in use"), r.err());
        }
    }

    /** Starts the broker and waits for the line that says where it listens. */
    private static Process start(int port, int controller, Path data) throws Exception {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar",
                System.getProperty("blip2.jar", "target/blip2-stream.jar"), "broker", "--port", String.valueOf(port),
                "--controller-port", String.valueOf(controller), "--data-dir", data.toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        java.util.concurrent.atomic.AtomicBoolean up = new java.util.concurrent.atomic.AtomicBoolean();
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(120_000);
            } catch (InterruptedException e) {
                return;
            }
            if (!up.get()) {
                p.destroyForcibly(); // ends the wait for its line below
            }
        }, "broker-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        StringBuilder seen = new StringBuilder();
        String line;
        while ((line = out.readLine()) != null) {
            seen.append(line).append('\n');
            if (line.startsWith("Kafka broker on localhost:" + port)) {
                up.set(true);
                watchdog.interrupt();
                Thread drain = new Thread(() -> {
                    try {
                        out.transferTo(java.io.Writer.nullWriter());
                    } catch (java.io.IOException e) {
                        // the process ended
                    }
                }, "broker-output");
                drain.setDaemon(true);
                drain.start();
                return p;
            }
        }
        throw new AssertionError("the broker ended (or hung for 120 s) before it listened:\n" + seen);
    }

    private static void stop(Process p) throws InterruptedException {
        p.destroy(); // SIGTERM
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("the broker did not stop within 60 s of SIGTERM");
        }
    }
}
