package io.blip2stream.service.bus;

import java.util.List;

/**
 * A record for Kafka: a topic, a key (the input record's key byte for byte, or the request id), a value and
 * headers (a header's value may be null, as Kafka allows).
 */
public record OutboundRecord(String topic, byte[] key, byte[] value, List<Header> headers) {
    public record Header(String name, byte[] value) {}

    /** The key as text, for logs. */
    public String keyText() {
        return key == null ? "null" : new String(key, java.nio.charset.StandardCharsets.UTF_8);
    }
}
