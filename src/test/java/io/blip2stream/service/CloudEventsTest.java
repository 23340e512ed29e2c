package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.model.Fixtures;
import io.cloudevents.CloudEvent;
import io.cloudevents.core.builder.CloudEventBuilder;
import io.cloudevents.jackson.JsonFormat;
import io.cloudevents.kafka.CloudEventDeserializer;
import io.cloudevents.kafka.KafkaMessageFactory;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 23, item 3: CloudEvents through the running service, with the CloudEvents Kafka library on both ends:
 * requests written as events in binary and structured mode are answered, and every output (each task's result,
 * tokens, a dead letter) is a binary-mode event the library reads back, of type {@code io.blip2stream.*} with the
 * request's id as its subject.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CloudEventsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    @TempDir
    static Path tmp;
    ServiceHarness harness;
    final byte[] png = Fixtures.image("blip2-opt-tiny", 0);

    @BeforeAll
    void start() throws Exception {
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("inference.max_batch_wait_ms", "5",
                "kafka.cloudevents.outputs", "binary", "kafka.cloudevents.source", "urn:test:captioner"));
    }

    @AfterAll
    void stop() {
        harness.close();
    }

    CloudEventBuilder event(String id) {
        return CloudEventBuilder.v1().withId(id).withSource(URI.create("/cameras/7")).withType("com.example.photo.taken");
    }

    /** A producer's record, as the library writes it, with a string key. */
    static ProducerRecord<String, byte[]> keyed(ProducerRecord<Void, byte[]> r, String key) {
        ProducerRecord<String, byte[]> out = new ProducerRecord<>(r.topic(), null, key, r.value());
        r.headers().forEach(h -> out.headers().add(h));
        return out;
    }

    @Test
    void eventsInBothModesAreAnsweredAndEveryOutputIsAnEvent() throws Exception {
        String topic = harness.topics().requests();
        String b64 = Base64.getEncoder().encodeToString(png);
        CloudEvent binary = event("ce-binary").withDataContentType("application/json")
                .withData(("{\"task\":\"caption\",\"image\":\"" + b64 + "\",\"stream\":true,\"params\":{\"max_new_tokens\":3,\"min_new_tokens\":3}}")
                        .getBytes(StandardCharsets.UTF_8)).build();
        harness.send(keyed(KafkaMessageFactory.createWriter(topic).writeBinary(binary), "cam-7"));
        CloudEvent structured = event("ce-structured").withDataContentType("image/png").withData(png).build();
        ProducerRecord<String, byte[]> s = keyed(KafkaMessageFactory.createWriter(topic).writeStructured(structured, JsonFormat.CONTENT_TYPE), "cam-8");
        s.headers().add("blip2-task", "vqa".getBytes()).add("blip2-question", "what is it?".getBytes());
        harness.send(s);
        for (String task : new String[] {"match", "embed"}) {
            CloudEvent e = event("ce-" + task).withDataContentType("application/json").withData(("{\"task\":\"" + task + "\",\"image\":\""
                    + b64 + "\",\"texts\":[\"a red circle\"]}").getBytes(StandardCharsets.UTF_8)).build();
            harness.send(keyed(KafkaMessageFactory.createWriter(topic).writeBinary(e), "cam-" + task));
        }
        CloudEvent broken = event("ce-broken").withDataContentType("application/json").withData("{\"task\":\"paint\"}".getBytes()).build();
        harness.send(keyed(KafkaMessageFactory.createWriter(topic).writeBinary(broken), "cam-9"));

        var t = harness.topics();
        Map<String, CloudEvent> byTopicAndSubject = new HashMap<>();
        Map<String, ConsumerRecord<String, byte[]>> records = new HashMap<>();
        try (KafkaConsumer<String, byte[]> c = harness.consumer(List.of(t.captions(), t.answers(), t.matches(), t.embeddings(), t.deadLetter(), t.tokens()))) {
            List<ConsumerRecord<String, byte[]>> got = ServiceHarness.readUntil(c, l -> l.stream().filter(r -> !r.topic().equals(t.tokens())).count() >= 5
                    && l.stream().filter(r -> r.topic().equals(t.tokens())).count() >= 3, 60_000);
            for (ConsumerRecord<String, byte[]> r : got) {
                assertNotNull(r.headers().lastHeader("ce_specversion"), r.topic() + " carries ce_* headers");
                // the SDK's Kafka deserializer, as a Knative or KServe consumer reads it
                CloudEvent e;
                try (CloudEventDeserializer d = new CloudEventDeserializer()) {
                    e = d.deserialize(r.topic(), r.headers(), r.value());
                }
                assertEquals(URI.create("urn:test:captioner"), e.getSource());
                String key = r.topic() + "|" + e.getSubject() + (r.topic().equals(t.tokens()) ? "|" + e.getId() : "");
                byTopicAndSubject.put(key, e);
                records.put(key, r);
            }
        }
        String binaryId = "ce-binary@/cameras/7"; // the event's id and source: it gave no id of its own
        CloudEvent caption = byTopicAndSubject.get(t.captions() + "|" + binaryId);
        assertNotNull(caption, "the binary-mode request answered, its id the event's: " + byTopicAndSubject.keySet());
        assertEquals("io.blip2stream.caption", caption.getType());
        assertTrue(caption.getId().startsWith(binaryId + "/"), "one id per distinct result: " + caption.getId());
        assertEquals("application/json", caption.getDataContentType());
        JsonNode result = JSON.readTree(caption.getData().toBytes());
        assertEquals(binaryId, result.get("id").asText());
        assertEquals("cam-7", records.get(t.captions() + "|" + binaryId).key(), "keyed as the request was");
        CloudEvent answer = byTopicAndSubject.get(t.answers() + "|ce-structured@/cameras/7");
        assertNotNull(answer, "the structured-mode request (an image as data) answered");
        assertEquals("io.blip2stream.answer", answer.getType());
        for (int i = 0; i < 3; i++) {
            String prefix = t.tokens() + "|" + binaryId + "|" + binaryId + "/" + i + "/";
            CloudEvent token = byTopicAndSubject.entrySet().stream().filter(x -> x.getKey().startsWith(prefix)).map(Map.Entry::getValue)
                    .findFirst().orElse(null);
            assertNotNull(token, "token " + i + " is an event: " + byTopicAndSubject.keySet());
            assertEquals("io.blip2stream.token", token.getType());
        }
        assertEquals("io.blip2stream.match", byTopicAndSubject.get(t.matches() + "|ce-match@/cameras/7").getType());
        assertEquals("io.blip2stream.embedding", byTopicAndSubject.get(t.embeddings() + "|ce-embed@/cameras/7").getType());
        CloudEvent dead = byTopicAndSubject.get(t.deadLetter() + "|ce-broken@/cameras/7");
        assertNotNull(dead, "the bad request's dead letter is an event: " + byTopicAndSubject.keySet());
        assertEquals("io.blip2stream.dead_letter", dead.getType());
        ConsumerRecord<String, byte[]> d = records.get(t.deadLetter() + "|ce-broken@/cameras/7");
        assertEquals("unknown_task", new String(d.headers().lastHeader("blip2-error-code").value()));
        // the request's own event attributes are kept, renamed, beside the dead letter's
        assertEquals("ce-broken", new String(d.headers().lastHeader("blip2-source-ce_id").value()));
        assertEquals("com.example.photo.taken", new String(d.headers().lastHeader("blip2-source-ce_type").value()));
        assertArrayEquals("{\"task\":\"paint\"}".getBytes(), d.value(), "the dead letter keeps the request's value");
        assertTrue(dead.getId().startsWith(topic + "-"), "one dead letter per record: its id is the record's place, " + dead.getId());
    }
}
