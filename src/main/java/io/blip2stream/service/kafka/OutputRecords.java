package io.blip2stream.service.kafka;

import io.blip2stream.engine.RequestError;
import io.blip2stream.engine.Task;
import io.blip2stream.service.bus.OutboundRecord;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.protocol.CloudEventRecords;
import io.blip2stream.service.protocol.RequestDecoder;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The records an answer to a Kafka request writes: its result on its task's topic, or its dead letter with the
 * reason; each keyed as the request was, with the request's trace headers, and with the {@code ce_*} headers of
 * CloudEvents binary mode when {@code kafka.cloudevents.outputs} says so.
 */
final class OutputRecords {
    /** Headers copied from a request to its outputs, so traces follow the request. */
    static final Set<String> TRACE_HEADERS = Set.of("traceparent", "tracestate", "baggage", "b3", "x-b3-traceid",
            "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id", "x-request-id", "x-correlation-id");
    /** A trace header longer than this is not copied. */
    static final int MAX_TRACE_HEADER_BYTES = 8192;
    /** A dead letter carries the record's headers up to this much in all (and none larger than a quarter of it). */
    static final int MAX_DEAD_LETTER_HEADER_BYTES = 1 << 20;

    private final ServiceConfig.Kafka kafka;

    OutputRecords(ServiceConfig.Kafka kafka) {
        this.kafka = kafka;
    }

    /**
     * The dead letter of a record: its value and headers (bounded: a header over a quarter of
     * {@link #MAX_DEAD_LETTER_HEADER_BYTES}, or past that total, is left out and counted), then the reason and where
     * the record is. Without {@code withRecord}, the reason and the record's place only.
     */
    static OutboundRecord deadLetterRecord(String topic, ConsumerRecord<byte[], byte[]> record, byte[] key, RequestError error,
                                           boolean withRecord) {
        List<OutboundRecord.Header> out = new ArrayList<>();
        byte[] value = new byte[0];
        if (withRecord) {
            int total = 0;
            int dropped = 0;
            for (Header h : record.headers()) {
                byte[] v = h.value();
                int size = (h.key() == null ? 0 : h.key().length()) + (v == null ? 0 : v.length);
                if (h.key() == null || size > MAX_DEAD_LETTER_HEADER_BYTES / 4 || total + size > MAX_DEAD_LETTER_HEADER_BYTES) {
                    dropped++;
                    continue;
                }
                total += size;
                out.add(new OutboundRecord.Header(h.key(), v));
            }
            if (dropped > 0) {
                out.add(header("blip2-headers-dropped", String.valueOf(dropped)));
            }
            value = record.value() == null ? new byte[0] : record.value();
        } else {
            out.add(header("blip2-value-dropped", String.valueOf(record.value() == null ? 0 : record.value().length)));
        }
        String message = error.getMessage() == null ? error.code() : error.getMessage();
        out.add(header("blip2-error-code", error.code()));
        out.add(header("blip2-error-message", message.length() > 1000 ? message.substring(0, 1000) + "..." : message));
        out.add(header("blip2-source-topic", record.topic()));
        out.add(header("blip2-source-partition", String.valueOf(record.partition())));
        out.add(header("blip2-source-offset", String.valueOf(record.offset())));
        return new OutboundRecord(topic, key, value, out);
    }

    /**
     * A result on its task's topic, keyed as the request was ({@code key}), with the request's trace headers (and,
     * as configured, ce_*).
     */
    OutboundRecord result(ConsumerRecord<byte[], byte[]> request, byte[] key, String id, Task task, byte[] json) {
        OutboundRecord r = new OutboundRecord(topicFor(task), key, json, traceHeaders(request));
        // one event per distinct result: the same result written again (a redelivery) is the same event, and an id
        // used again after the store forgot it names another
        return event(r, id + "/" + io.blip2stream.common.Sha256.hex(json).substring(0, 16), resultType(task), id, "application/json");
    }

    /**
     * The dead letter of a request ({@link #deadLetterRecord}) on the dead-letter topic, as an event when outputs
     * are CloudEvents.
     *
     * @param id the request's id, when it is known
     */
    OutboundRecord deadLetter(ConsumerRecord<byte[], byte[]> request, byte[] key, String id, RequestError error, boolean withRecord) {
        return deadLetterEvent(deadLetterRecord(kafka.topics().deadLetter(), request, key, error, withRecord), request, id);
    }

    /**
     * A dead letter as an event of type {@code dead_letter}, with outputs in CloudEvents binary mode: its id the
     * record's place (one dead letter per record), its subject the request's id when known. The record's own
     * {@code ce_*} and {@code content-type} headers, copied with it, keep their values under {@code blip2-source-}.
     */
    private OutboundRecord deadLetterEvent(OutboundRecord r, ConsumerRecord<byte[], byte[]> record, String requestId) {
        if (!kafka.cloudEvents().binaryOutputs()) {
            return r;
        }
        List<OutboundRecord.Header> kept = new ArrayList<>();
        for (OutboundRecord.Header h : r.headers()) {
            String n = h.name().toLowerCase(Locale.ROOT);
            kept.add(n.startsWith("ce_") || n.equals("content-type") ? new OutboundRecord.Header("blip2-source-" + h.name(), h.value()) : h);
        }
        return event(new OutboundRecord(r.topic(), r.key(), r.value(), kept), RequestDecoder.recordId(record), "dead_letter", requestId, null);
    }

    /** The record with the ce_* headers of binary mode added, when outputs are CloudEvents; else as it is. */
    private OutboundRecord event(OutboundRecord r, String id, String type, String subject, String contentType) {
        ServiceConfig.CloudEvents ce = kafka.cloudEvents();
        if (!ce.binaryOutputs()) {
            return r;
        }
        List<OutboundRecord.Header> headers = new ArrayList<>(r.headers());
        for (Header h : CloudEventRecords.binaryHeaders(r.topic(), ce.source(), id, type, subject, contentType)) {
            headers.add(new OutboundRecord.Header(h.key(), h.value()));
        }
        return new OutboundRecord(r.topic(), r.key(), r.value(), headers);
    }

    /** The CloudEvents type of a task's result, after {@code io.blip2stream.}: what its topic holds. */
    static String resultType(Task task) {
        return switch (task) {
            case CAPTION -> "caption";
            case VQA -> "answer";
            case MATCH -> "match";
            case EMBED -> "embedding";
        };
    }

    private String topicFor(Task task) {
        ServiceConfig.Topics t = kafka.topics();
        return switch (task) {
            case CAPTION -> t.captions();
            case VQA -> t.answers();
            case MATCH -> t.matches();
            case EMBED -> t.embeddings();
        };
    }

    /** The record's tracing headers (a request's trace follows it to its outputs), each at most 8 KiB. */
    static List<OutboundRecord.Header> traceHeaders(ConsumerRecord<byte[], byte[]> record) {
        List<OutboundRecord.Header> out = new ArrayList<>();
        for (Header h : record.headers()) {
            if (h.key() != null && h.value() != null && h.value().length <= MAX_TRACE_HEADER_BYTES
                    && TRACE_HEADERS.contains(h.key().toLowerCase(Locale.ROOT))) {
                out.add(new OutboundRecord.Header(h.key(), h.value()));
            }
        }
        return out;
    }

    private static OutboundRecord.Header header(String name, String value) {
        return new OutboundRecord.Header(name, value.getBytes(StandardCharsets.UTF_8));
    }
}
