package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.engine.RequestError;
import io.blip2stream.service.protocol.RequestDecoder.Fields;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A Kafka record's request, in its forms: the JSON form (the value), the raw form (the image as the value, or by
 * reference in {@code blip2-image-url}, the fields in {@code blip2-*} headers), and either one as a CloudEvent's
 * data ({@link CloudEventRecords}). Gives the fields; {@link RequestDecoder} validates them.
 */
final class RecordForms {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final RequestDecoder decoder;
    private final long maxRecordBytes;

    RecordForms(RequestDecoder decoder, long maxRecordBytes) {
        this.decoder = decoder;
        this.maxRecordBytes = maxRecordBytes;
    }

    /**
     * The request's headers by lower-case name. The {@code blip2-} ones must each appear once and be UTF-8 (a
     * header the decoder reads twice could mean two things); a null value is an empty one. Others (tracing, the
     * producer's own) are not read here.
     */
    static Map<String, byte[]> requestHeaders(Iterable<Header> headers) {
        Map<String, byte[]> out = new LinkedHashMap<>();
        for (Header h : headers) {
            String name = h.key() == null ? "" : h.key().toLowerCase(Locale.ROOT);
            if (!name.startsWith("blip2-")) {
                continue;
            }
            byte[] v = h.value() == null ? new byte[0] : h.value();
            if (out.put(name, v) != null) {
                throw new RequestError(RequestError.INVALID_REQUEST, "header " + name + " appears more than once");
            }
            try {
                StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(v));
            } catch (CharacterCodingException e) {
                throw new RequestError(RequestError.INVALID_REQUEST, "header " + name + " is not UTF-8 text");
            }
        }
        return out;
    }

    /** A Kafka record's fields (any shape: null key, value or header values, duplicate or binary headers). */
    Fields fields(ConsumerRecord<byte[], byte[]> record) {
        Map<String, byte[]> headers = requestHeaders(record.headers());
        if (!CloudEventRecords.isCloudEvent(record.headers())) {
            return fields(record.value(), headers, RequestDecoder.recordId(record), headers.containsKey("blip2-task"));
        }
        if (record.value() != null && record.value().length > maxRecordBytes) {
            throw new RequestError(RequestError.RECORD_TOO_LARGE, "the record has " + record.value().length + " bytes; the limit is "
                    + maxRecordBytes);
        }
        CloudEventRecords.Event e = CloudEventRecords.read(record);
        if (e.json() && headers.containsKey("blip2-task")) {
            throw new RequestError(RequestError.INVALID_REQUEST, "a CloudEvent whose data is a JSON request takes its fields from "
                    + "the JSON, not from blip2-* headers (it has blip2-task)");
        }
        if (!e.json() && !headers.containsKey("blip2-task")) {
            throw new RequestError(RequestError.INVALID_REQUEST, "a CloudEvent whose data is an image needs the header blip2-task "
                    + "(and the other blip2-* headers of the raw form); JSON data (datacontenttype application/json) is a JSON request");
        }
        return fields(e.data(), headers, CloudEventRecords.requestId(e, RequestDecoder.recordId(record)), !e.json());
    }

    /**
     * A record's value and request headers (by lower-case name) to its fields, not yet validated.
     *
     * @param recordId the id the record has when it gives none of its own
     * @param raw      the raw form (the value is the image, the fields are headers); else the value is a JSON request
     */
    Fields fields(byte[] value, Map<String, byte[]> headers, String recordId, boolean raw) {
        String imageUrl = header(headers, "blip2-image-url");
        boolean byReference = raw && imageUrl != null && !imageUrl.isBlank();
        if ((value == null || value.length == 0) && !byReference) {
            throw new RequestError(RequestError.INVALID_REQUEST, "the record has no value");
        }
        if (byReference && value != null && value.length > 0) {
            throw new RequestError(RequestError.INVALID_REQUEST, "the record has both an image (its value) and the header "
                    + "blip2-image-url: send one");
        }
        if (value != null && value.length > maxRecordBytes) {
            throw new RequestError(RequestError.RECORD_TOO_LARGE, "the record has " + value.length + " bytes; the limit is "
                    + maxRecordBytes);
        }
        String headerId = header(headers, "blip2-id");
        Fields f;
        if (raw) {
            f = new Fields(headerId, header(headers, "blip2-task"), byReference ? null : value, header(headers, "blip2-prompt"),
                    header(headers, "blip2-question"), jsonHeader(headers, "blip2-texts"), jsonHeader(headers, "blip2-params"),
                    bool(header(headers, "blip2-stream"), "blip2-stream"), decoder.deadlineMs(header(headers, "blip2-deadline-ms")),
                    byReference ? imageUrl.strip() : null);
        } else {
            f = decoder.fromJson(value, headerId);
            if (headerId != null && !headerId.isEmpty() && f.id() != null && !f.id().equals(headerId)) {
                throw new RequestError(RequestError.INVALID_REQUEST, "the JSON id and the header blip2-id differ");
            }
        }
        if (f.id() == null || f.id().isEmpty()) {
            f = f.as(recordId, f.task());
        }
        return f;
    }

    private static boolean bool(String s, String name) {
        if (s == null || s.isBlank()) {
            return false;
        }
        switch (s.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "true":
            case "1":
            case "yes":
                return true;
            case "false":
            case "0":
            case "no":
                return false;
            default:
                throw new RequestError(RequestError.INVALID_REQUEST, name + " must be true or false, got '" + ClientText.quote(s) + "'");
        }
    }

    private static String header(Map<String, byte[]> headers, String name) {
        byte[] v = headers.get(name);
        return v == null ? null : new String(v, StandardCharsets.UTF_8);
    }

    private static JsonNode jsonHeader(Map<String, byte[]> headers, String name) {
        byte[] v = headers.get(name);
        if (v == null || v.length == 0) {
            return null;
        }
        return JsonInput.read(v, "header " + name,
                name.equals("blip2-params") ? RequestError.INVALID_PARAMS : RequestError.INVALID_JSON);
    }
}
