package io.blip2stream.service.bus;

import java.util.List;

/** A record for the result publisher to write: a topic, a key (the request id), a value and headers. */
public record OutboundRecord(String topic, String key, byte[] value, List<Header> headers) {
    public record Header(String name, byte[] value) {}
}
