package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.cluster.ClusterCertificates;
import io.blip2stream.cluster.ClusterTls;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.kafka.EmbeddedKafka;
import io.vertx.core.VertxOptions;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, item 5: the service against a Kafka listener that speaks SASL_SSL (PLAIN over TLS, the broker's
 * certificate from the {@code certs} command, trusted as PEM), configured only through {@code kafka.consumer} and
 * {@code kafka.producer} in a config file, as README says. It creates its topics, reports Kafka ready, answers a
 * record exactly once (transactions) and publishes the caption; a client with a wrong password, and one without TLS,
 * are refused by the same listener.
 */
@Tag("broker")
class KafkaSecurityTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @Test
    void theServiceRunsAgainstASaslSslListener() throws Exception {
        Path certs = ClusterCertificates.make(tmp.resolve("certs"), List.of("localhost"), 30).made().get(0);
        String chain = Files.readString(certs.resolve(ClusterTls.CERT));
        String key = Files.readString(certs.resolve(ClusterTls.KEY));
        String ca = certs.resolve(ClusterTls.CA).toString();
        String jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"blip2\" password=\"s3cret\";";
        Map<String, String> broker = new HashMap<>();
        broker.put("sasl.enabled.mechanisms", "PLAIN");
        broker.put("listener.name.secured.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_blip2=\"s3cret\";");
        broker.put("listener.name.secured.ssl.keystore.type", "PEM");
        broker.put("listener.name.secured.ssl.keystore.certificate.chain", chain);
        broker.put("listener.name.secured.ssl.keystore.key", key);
        try (EmbeddedKafka kafka = new EmbeddedKafka(tmp.resolve("kafka"), 0, 0).listener("SECURED", "SASL_SSL", 0, broker).start()) {
            String secured = kafka.listenerBootstrapServers();
            // the client settings, in a config file as an operator writes them
            Path conf = Files.writeString(tmp.resolve("secured.yaml"), String.join("\n",
                    "kafka:",
                    "  bootstrap_servers: " + secured,
                    "  consumer:",
                    "    security.protocol: SASL_SSL",
                    "    sasl.mechanism: PLAIN",
                    "    sasl.jaas.config: '" + jaas + "'",
                    "    ssl.truststore.type: PEM",
                    "    ssl.truststore.location: " + ca,
                    "  producer:",
                    "    security.protocol: SASL_SSL",
                    "    sasl.mechanism: PLAIN",
                    "    sasl.jaas.config: '" + jaas + "'",
                    "    ssl.truststore.type: PEM",
                    "    ssl.truststore.location: " + ca,
                    ""));
            // a YAML alias is not followed by the loader: refused, not read as no properties
            Path aliased = Files.writeString(tmp.resolve("aliased.yaml"), "kafka:\n  consumer: &s\n    security.protocol: SSL\n  producer: *s\n");
            var refused = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(aliased, Map.of(), Map.of()));
            assertTrue(refused.getMessage().contains("kafka.producer"), refused.getMessage());
            Map<String, String> client = Map.of("security.protocol", "SASL_SSL", "sasl.mechanism", "PLAIN", "sasl.jaas.config", jaas,
                    "ssl.truststore.type", "PEM", "ssl.truststore.location", ca);

            // the listener is secured: a wrong password, and plaintext, are refused
            Map<String, Object> wrong = new HashMap<>(client);
            wrong.put("sasl.jaas.config", jaas.replace("s3cret", "guess"));
            Throwable denied = assertRefused(secured, wrong);
            assertTrue(denied instanceof org.apache.kafka.common.errors.SaslAuthenticationException, "a wrong password: " + denied);
            assertRefused(secured, Map.of()); // plaintext: the TLS listener never answers it

            Map<String, String> o = new HashMap<>();
            o.put("data_dir", tmp.resolve("data").toString());
            o.put("http.port", "0");
            o.put("http.host", "127.0.0.1");
            o.put("model.path", Fixtures.model("blip2-opt-tiny").toString());
            o.put("model.retrieval_path", Fixtures.model("blip2-itm-tiny").toString());
            o.put("kafka.commit_interval_ms", "50");
            o.put("cluster.name", "secured-" + UUID.randomUUID());
            ServiceConfig c = ConfigLoader.load(conf, Map.of(), o);
            assertEquals("SASL_SSL", c.kafka().producer().get("security.protocol"));
            Blip2Service service = new Blip2Service(c, new VertxOptions()).start();
            try {
                HttpResponse<String> ready = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + service.httpPort() + "/health/ready")).build(), HttpResponse.BodyHandlers.ofString());
                long end = System.currentTimeMillis() + 60_000;
                while (ready.statusCode() != 200 && System.currentTimeMillis() < end) {
                    Thread.sleep(500);
                    ready = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + service.httpPort() + "/health/ready")).build(), HttpResponse.BodyHandlers.ofString());
                }
                assertEquals(200, ready.statusCode(), "ready against the secured broker (its probe connects as the consumer): " + ready.body());

                Map<String, Object> pc = new HashMap<>(client);
                pc.put("bootstrap.servers", secured);
                try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(pc, new StringSerializer(), new ByteArraySerializer())) {
                    String request = "{\"id\":\"sasl-1\",\"task\":\"caption\",\"params\":{\"max_new_tokens\":4},\"image\":\""
                            + Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0)) + "\"}";
                    producer.send(new ProducerRecord<>(c.kafka().topics().requests(), "sasl-1", request.getBytes(StandardCharsets.UTF_8)))
                            .get(30, TimeUnit.SECONDS);
                }
                Map<String, Object> cc = new HashMap<>(client);
                cc.put("bootstrap.servers", secured);
                cc.put("group.id", "check-" + UUID.randomUUID());
                cc.put("auto.offset.reset", "earliest");
                cc.put("isolation.level", "read_committed");
                int answers = 0;
                try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(cc, new StringDeserializer(), new ByteArrayDeserializer())) {
                    consumer.subscribe(List.of(c.kafka().topics().captions()));
                    end = System.currentTimeMillis() + 90_000;
                    while (answers == 0 && System.currentTimeMillis() < end) {
                        for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(consumer.poll(Duration.ofMillis(200)))) {
                            JsonNode answer = JSON.readTree(r.value());
                            assertEquals("sasl-1", answer.path("id").asText(), answer.toString());
                            assertTrue(answer.path("text").asText().length() > 0, answer.toString());
                            answers++;
                        }
                    }
                    for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(consumer.poll(Duration.ofSeconds(2)))) {
                        answers++; // a duplicate would show here
                    }
                }
                assertEquals(1, answers, "the record answered once, through the secured listener");
            } finally {
                service.stop();
            }
        }
    }

    /** An admin client with {@code settings} cannot list the topics of the secured listener: why. */
    private static Throwable assertRefused(String bootstrap, Map<String, ?> settings) {
        Map<String, Object> a = new HashMap<>(settings);
        a.put("bootstrap.servers", bootstrap);
        a.put("request.timeout.ms", "3000");
        a.put("default.api.timeout.ms", "6000");
        try (Admin admin = Admin.create(a)) {
            return assertThrows(ExecutionException.class, () -> admin.listTopics().names().get(20, TimeUnit.SECONDS), settings.toString())
                    .getCause();
        }
    }
}
