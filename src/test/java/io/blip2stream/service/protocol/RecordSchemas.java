package io.blip2stream.service.protocol;

import io.vertx.core.json.JsonObject;
import io.vertx.json.schema.Draft;
import io.vertx.json.schema.JsonSchema;
import io.vertx.json.schema.JsonSchemaOptions;
import io.vertx.json.schema.OutputFormat;
import io.vertx.json.schema.OutputUnit;
import io.vertx.json.schema.Validator;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The tests' check of records against {@link Schemas}: every output a test reads through its harness's helpers
 * (ServiceHarness, ClusterNodes) is validated by the schema of its topic, and a record that does not follow it
 * fails the test that read it.
 */
public final class RecordSchemas {
    private static final Map<String, Validator> VALIDATORS = new ConcurrentHashMap<>();
    /** Records validated so far in this JVM, by schema (the tests print it; a suite that validates none is suspect). */
    public static final Map<String, AtomicLong> CHECKED = new ConcurrentHashMap<>();

    private RecordSchemas() {}

    /** The outcome of validating {@code instance} (a JSON text) against the schema {@code name}. */
    public static OutputUnit validate(String name, String instance) {
        Validator v = VALIDATORS.computeIfAbsent(name, n -> Validator.create(
                JsonSchema.of(new JsonObject(new String(Schemas.bytes(n), StandardCharsets.UTF_8))),
                new JsonSchemaOptions().setDraft(Draft.DRAFT202012).setBaseUri("urn:blip2-stream:schemas:")
                        .setOutputFormat(OutputFormat.Basic)));
        return v.validate(new JsonObject(instance));
    }

    /** Fails with every error when {@code instance} does not follow the schema {@code name}. */
    public static void assertValid(String name, String instance, String what) {
        OutputUnit out = validate(name, instance);
        if (!Boolean.TRUE.equals(out.getValid())) {
            StringBuilder b = new StringBuilder(what + " does not follow the schema '" + name + "':");
            if (out.getErrors() != null) {
                for (OutputUnit e : out.getErrors()) {
                    b.append("\n  ").append(e.getInstanceLocation()).append(": ").append(e.getError()).append(" (").append(e.getKeywordLocation()).append(')');
                }
            } else {
                b.append(' ').append(out.getError());
            }
            b.append("\n  the record: ").append(instance.length() > 2000 ? instance.substring(0, 2000) + "..." : instance);
            throw new AssertionError(b.toString());
        }
        CHECKED.computeIfAbsent(name, n -> new AtomicLong()).incrementAndGet();
    }

    /**
     * Checks an output record by its topic's schema (the default topic names): results by their task, tokens, and
     * dead letters by their headers. Records of other topics are not checked.
     */
    public static void check(ConsumerRecord<?, byte[]> r) {
        String what = r.topic() + "/" + r.partition() + "/" + r.offset();
        switch (r.topic()) {
            case "blip2.captions" -> assertValid("caption", text(r), what);
            case "blip2.answers" -> assertValid("answer", text(r), what);
            case "blip2.matches" -> assertValid("match", text(r), what);
            case "blip2.embeddings" -> assertValid("embedding", text(r), what);
            case "blip2.tokens" -> assertValid("token", text(r), what);
            case "blip2.requests.DLT" -> {
                Map<String, String> headers = new HashMap<>();
                for (Header h : r.headers()) {
                    headers.put(h.key(), h.value() == null ? "" : new String(h.value(), StandardCharsets.UTF_8));
                }
                assertValid("dead-letter", new JsonObject(new HashMap<>(headers)).encode(), what);
            }
            default -> { }
        }
    }

    /** The records polled, each checked ({@link #check}): how a test reads outputs. */
    public static <K> org.apache.kafka.clients.consumer.ConsumerRecords<K, byte[]> checked(
            org.apache.kafka.clients.consumer.ConsumerRecords<K, byte[]> records) {
        records.forEach(RecordSchemas::check);
        return records;
    }

    private static String text(ConsumerRecord<?, byte[]> r) {
        return new String(r.value(), StandardCharsets.UTF_8);
    }
}
