package io.blip2stream.service.protocol;

import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.engine.Task;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.cloudevents.CloudEvent;
import io.cloudevents.core.builder.CloudEventBuilder;
import io.cloudevents.jackson.JsonFormat;
import io.cloudevents.kafka.KafkaMessageFactory;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Requests as CloudEvents, written by the CloudEvents Kafka library as a producer would write them (binary and
 * structured mode), read by the decoder; and the ce_* headers of outputs, read back by the same library.
 */
class CloudEventRecordsTest {
    final ServiceConfig config = ConfigLoader.load(null, Map.of(), Map.of());
    final RequestDecoder decoder = new RequestDecoder(config.inference(), config.limits(), RequestDecoderTest.TEXTS);
    final byte[] png = Fixtures.image("blip2-opt-tiny", 0);
    final String b64 = Base64.getEncoder().encodeToString(png);

    /** The producer's record as the consumer gets it (partition 1, offset 42). */
    static ConsumerRecord<byte[], byte[]> consumed(ProducerRecord<Void, byte[]> p) {
        ConsumerRecord<byte[], byte[]> r = new ConsumerRecord<>("blip2.requests", 1, 42, null, p.value());
        p.headers().forEach(h -> r.headers().add(h));
        return r;
    }

    CloudEventBuilder event(String id) {
        return CloudEventBuilder.v1().withId(id).withSource(URI.create("/cameras/7")).withType("com.example.photo.taken");
    }

    @Test
    void aBinaryModeEventWithAJsonRequestIsThatRequestWithTheEventsIdAsItsOwn() {
        byte[] json = ("{\"task\":\"vqa\",\"image\":\"" + b64 + "\",\"question\":\"what is it?\"}").getBytes(StandardCharsets.UTF_8);
        CloudEvent e = event("evt-1").withDataContentType("application/json").withData(json).build();
        ConsumerRecord<byte[], byte[]> r = consumed(KafkaMessageFactory.createWriter("blip2.requests").writeBinary(e));
        assertTrue(CloudEventRecords.isCloudEvent(r.headers()));
        InferenceJob j = decoder.decodeRecord(r, 0);
        assertEquals("evt-1@/cameras/7", j.id(), "the event's id and source name the request that gives none");
        assertEquals(Task.VQA, j.task());
        assertArrayEquals(png, j.image());
        // the request's own id wins
        byte[] withId = ("{\"id\":\"mine\",\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes(StandardCharsets.UTF_8);
        CloudEvent own = event("evt-2").withDataContentType("application/json").withData(withId).build();
        assertEquals("mine", decoder.decodeRecord(consumed(KafkaMessageFactory.createWriter("blip2.requests").writeBinary(own)), 0).id());
    }

    @Test
    void aStructuredModeEventIsReadWhetherItsDataIsJsonOrAnImage() {
        byte[] json = ("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes(StandardCharsets.UTF_8);
        CloudEvent e = event("evt-3").withDataContentType("application/json").withData(json).build();
        ProducerRecord<Void, byte[]> p = KafkaMessageFactory.createWriter("blip2.requests").writeStructured(e, JsonFormat.CONTENT_TYPE);
        ConsumerRecord<byte[], byte[]> r = consumed(p);
        assertFalse(new String(r.value(), StandardCharsets.UTF_8).isEmpty());
        assertTrue(CloudEventRecords.isCloudEvent(r.headers()), "content-type application/cloudevents+json");
        InferenceJob j = decoder.decodeRecord(r, 0);
        assertEquals("evt-3@/cameras/7", j.id());
        assertEquals(Task.CAPTION, j.task());
        assertArrayEquals(png, j.image());
        // an image as the data (data_base64), the fields in blip2-* headers as in the raw form
        CloudEvent img = event("evt-4").withDataContentType("image/png").withData(png).build();
        ProducerRecord<Void, byte[]> q = KafkaMessageFactory.createWriter("blip2.requests").writeStructured(img, JsonFormat.CONTENT_TYPE);
        q.headers().add("blip2-task", "vqa".getBytes()).add("blip2-question", "what color?".getBytes());
        InferenceJob k = decoder.decodeRecord(consumed(q), 0);
        assertEquals("evt-4@/cameras/7", k.id());
        // an id and source too long for a request id: a digest of both
        CloudEvent longSource = CloudEventBuilder.v1().withId("evt-5").withSource(URI.create("/" + "s".repeat(300)))
                .withType("t").withDataContentType("application/json").withData(("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes()).build();
        String digest = decoder.decodeRecord(consumed(KafkaMessageFactory.createWriter("blip2.requests").writeBinary(longSource)), 0).id();
        assertTrue(digest.startsWith("ce-") && digest.length() == 67, digest);
        assertEquals(Task.VQA, k.task());
        assertArrayEquals(png, k.image());
        assertEquals("what color?", ((io.blip2stream.engine.InferenceJob.Vqa) k.input()).question());
    }

    @Test
    void brokenOrAmbiguousEventsAreRefusedWithTheReason() {
        ConsumerRecord<byte[], byte[]> notJson = new ConsumerRecord<>("blip2.requests", 1, 42, null, "{\"specversion\":".getBytes());
        notJson.headers().add("content-type", "application/cloudevents+json".getBytes());
        RequestError a = assertThrows(RequestError.class, () -> decoder.decodeRecord(notJson, 0));
        assertEquals(RequestError.INVALID_REQUEST, a.code());
        assertTrue(a.getMessage().contains("not a valid CloudEvent"), a.getMessage());
        assertFalse(a.getMessage().contains("com.fasterxml") || a.getMessage().contains("Exception"), "no library internals: " + a.getMessage());
        ConsumerRecord<byte[], byte[]> badToken = new ConsumerRecord<>("blip2.requests", 1, 43, null, "{\"specversion\": x}".getBytes());
        badToken.headers().add("content-type", "application/cloudevents+json".getBytes());
        String m = assertThrows(RequestError.class, () -> decoder.decodeRecord(badToken, 0)).getMessage();
        assertTrue(m.contains("not a valid CloudEvent: unexpected 'x' (text must be in double quotes) at line 1, column 17"), m);
        assertFalse(m.contains("was expecting") || m.contains("JSON String, Number"), "the parser's own words: " + m);
        ConsumerRecord<byte[], byte[]> noType = new ConsumerRecord<>("blip2.requests", 1, 42, null, "{}".getBytes());
        noType.headers().add("ce_specversion", "1.0".getBytes()).add("ce_id", "x".getBytes());
        assertEquals(RequestError.INVALID_REQUEST, assertThrows(RequestError.class, () -> decoder.decodeRecord(noType, 0)).code());
        ConsumerRecord<byte[], byte[]> badVersion = new ConsumerRecord<>("blip2.requests", 1, 42, null, "{}".getBytes());
        badVersion.headers().add("ce_specversion", "9.9".getBytes()).add("ce_id", "x".getBytes())
                .add("ce_source", "/x".getBytes()).add("ce_type", "t".getBytes());
        assertEquals(RequestError.INVALID_REQUEST, assertThrows(RequestError.class, () -> decoder.decodeRecord(badVersion, 0)).code());
        // an image with no task
        CloudEvent img = event("evt-5").withDataContentType("image/png").withData(png).build();
        RequestError noTask = assertThrows(RequestError.class, () -> decoder.decodeRecord(
                consumed(KafkaMessageFactory.createWriter("blip2.requests").writeBinary(img)), 0));
        assertTrue(noTask.getMessage().contains("needs the header blip2-task"), noTask.getMessage());
        // JSON data and blip2-task: two places for the task
        CloudEvent json = event("evt-6").withDataContentType("application/json")
                .withData(("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes()).build();
        ProducerRecord<Void, byte[]> both = KafkaMessageFactory.createWriter("blip2.requests").writeBinary(json);
        both.headers().add("blip2-task", "vqa".getBytes());
        assertEquals(RequestError.INVALID_REQUEST, assertThrows(RequestError.class, () -> decoder.decodeRecord(consumed(both), 0)).code());
    }

    @Test
    void outputHeadersAreABinaryModeEventTheLibraryReadsBack() {
        byte[] result = "{\"id\":\"r1\",\"text\":\"a cat\"}".getBytes(StandardCharsets.UTF_8);
        List<Header> headers = CloudEventRecords.binaryHeaders("blip2.captions", URI.create("/blip2-stream"), "r1", "caption", "r1",
                "application/json");
        ConsumerRecord<byte[], byte[]> r = new ConsumerRecord<>("blip2.captions", 0, 0, "k".getBytes(), result);
        headers.forEach(h -> r.headers().add(h));
        assertEquals("1.0", new String(r.headers().lastHeader("ce_specversion").value()));
        CloudEvent e = KafkaMessageFactory.createReader(r).toEvent();
        assertEquals("r1", e.getId());
        assertEquals("io.blip2stream.caption", e.getType());
        assertEquals("r1", e.getSubject());
        assertEquals(URI.create("/blip2-stream"), e.getSource());
        assertEquals("application/json", e.getDataContentType());
        assertTrue(e.getTime() != null);
        assertArrayEquals(result, e.getData().toBytes());
    }
}
