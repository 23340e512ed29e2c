package io.blip2stream.service.protocol;

import io.blip2stream.engine.RequestError;
import io.cloudevents.CloudEvent;
import io.cloudevents.core.builder.CloudEventBuilder;
import io.cloudevents.core.message.MessageReader;
import io.cloudevents.kafka.KafkaMessageFactory;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * CloudEvents on Kafka (the CloudEvents Kafka protocol binding, through its library): requests that come as
 * CloudEvents, in binary mode ({@code ce_*} headers, the value the event's data) or structured mode (the value a
 * JSON event, {@code content-type: application/cloudevents+json}), and the {@code ce_*} headers of outputs in binary
 * mode.
 *
 * <p>An event's data is the request: with a JSON content type (or none), the JSON request; with any other (an
 * image type, {@code application/octet-stream}), the image itself, its fields in the {@code blip2-*} headers as in
 * the raw form. The event's id and source name the request when it gives no id of its own ({@link #requestId}:
 * CloudEvents consumers may take events with the same source and id as duplicates; so does this service).
 */
public final class CloudEventRecords {
    /** The event types of the outputs, by what they carry: {@code io.blip2stream.caption}, ... */
    public static final String TYPE_PREFIX = "io.blip2stream.";

    private CloudEventRecords() {}

    /** A request read from a CloudEvent: its data, whether that is a JSON request, and the event's id and source. */
    public record Event(byte[] data, boolean json, String id, String source) {}

    /**
     * The id of a request that is an event and gives none of its own: {@code ID@SOURCE} (an event is named by both:
     * two sources may use the same ids), or, when that is longer than a request id may be, {@code ce-} and the
     * SHA-256 of both; {@code fallback} when the event has no id.
     */
    public static String requestId(Event e, String fallback) {
        if (e.id() == null || e.id().isBlank()) {
            return fallback;
        }
        String id = e.id() + "@" + e.source();
        if (id.length() <= RequestDecoder.MAX_ID_CHARS && id.chars().noneMatch(Character::isISOControl)) {
            return id;
        }
        return "ce-" + io.blip2stream.common.Sha256.hex((e.source() + "\n" + e.id()).getBytes(StandardCharsets.UTF_8));
    }

    /** Whether the record is a CloudEvent in binary ({@code ce_specversion}) or structured mode. */
    public static boolean isCloudEvent(Headers headers) {
        for (Header h : headers) {
            if (h.key() == null) {
                continue;
            }
            String name = h.key().toLowerCase(Locale.ROOT);
            if (name.equals("ce_specversion")) {
                return true;
            }
            if (name.equals("content-type") && h.value() != null
                    && new String(h.value(), StandardCharsets.UTF_8).strip().toLowerCase(Locale.ROOT).startsWith("application/cloudevents")) {
                return true;
            }
        }
        return false;
    }

    /** The record as a CloudEvent (binary or structured), or {@code invalid_request} saying what is wrong. */
    public static Event read(ConsumerRecord<byte[], byte[]> record) {
        CloudEvent e;
        try {
            MessageReader reader = KafkaMessageFactory.createReader(record.headers(), record.value());
            e = reader.toEvent();
        } catch (RuntimeException x) { // the library's refusals: CloudEventRWException, EventDeserializationException, ...
            throw new RequestError(RequestError.INVALID_REQUEST, "the record is not a valid CloudEvent: " + reason(x));
        }
        byte[] data = e.getData() == null ? new byte[0] : e.getData().toBytes();
        return new Event(data, isJson(e.getDataContentType()), e.getId(), String.valueOf(e.getSource()));
    }

    /**
     * What is wrong, in the words of the innermost cause without class names; a structured event that is not JSON in
     * {@link JsonInput}'s words, as every other JSON the service is sent.
     */
    private static String reason(Throwable x) {
        Throwable root = x;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        if (root instanceof com.fasterxml.jackson.core.JsonProcessingException j) {
            return JsonInput.problem(j);
        }
        String m = root.getMessage() == null ? x.getMessage() : root.getMessage();
        if (m == null) {
            return "unreadable";
        }
        m = m.split("\n", 2)[0].replaceAll("\\b(?:[a-z][a-z0-9_]*\\.)+[A-Z][A-Za-z0-9_$]*(?:Exception|Error)\\b:?\\s*", "");
        return m.isBlank() ? "unreadable" : ClientText.detail(m.strip());
    }

    /** Whether a content type is JSON ({@code application/json}, {@code text/json}, a {@code +json} type), or absent. */
    static boolean isJson(String contentType) {
        if (contentType == null || contentType.isBlank()) {
            return true;
        }
        String t = contentType.toLowerCase(Locale.ROOT).split(";", 2)[0].strip();
        return t.equals("application/json") || t.equals("text/json") || t.endsWith("+json");
    }

    /**
     * The {@code ce_*} headers (and {@code content-type}) of an output in binary mode.
     *
     * @param id          the event's id: unique per output under {@code source}
     * @param type        what the output is, after {@link #TYPE_PREFIX} ({@code caption}, {@code dead_letter}, ...)
     * @param subject     the request's id
     * @param contentType the value's type; null when not known (a dead letter's value is whatever came in)
     */
    public static List<Header> binaryHeaders(String topic, URI source, String id, String type, String subject, String contentType) {
        CloudEventBuilder b = CloudEventBuilder.v1()
                .withId(id)
                .withSource(source)
                .withType(TYPE_PREFIX + type)
                .withTime(OffsetDateTime.now(ZoneOffset.UTC));
        if (subject != null) {
            b.withSubject(subject);
        }
        if (contentType != null) {
            b.withDataContentType(contentType);
        }
        ProducerRecord<Void, byte[]> r = KafkaMessageFactory.createWriter(topic).writeBinary(b.build());
        List<Header> out = new ArrayList<>();
        r.headers().forEach(out::add);
        return out;
    }
}
