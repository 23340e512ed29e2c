package io.blip2stream.service.bus;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.eventbus.MessageCodec;

/**
 * A codec for messages that cross the clustered event bus: JSON on the wire (Jackson, the record's own fields),
 * the same instance handed over locally.
 */
public final class JsonCodec<T> implements MessageCodec<T, T> {
    private static final ObjectMapper JSON = new ObjectMapper()
            .configure(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
    private final Class<T> type;

    public JsonCodec(Class<T> type) {
        this.type = type;
    }

    @Override
    public void encodeToWire(Buffer buffer, T t) {
        try {
            byte[] b = JSON.writeValueAsBytes(t);
            buffer.appendInt(b.length).appendBytes(b);
        } catch (Exception e) {
            throw new IllegalStateException("cannot encode " + type.getSimpleName(), e);
        }
    }

    @Override
    public T decodeFromWire(int pos, Buffer buffer) {
        int len = buffer.getInt(pos);
        try {
            return JSON.readValue(buffer.getBytes(pos + 4, pos + 4 + len), type);
        } catch (Exception e) {
            throw new IllegalStateException("cannot decode " + type.getSimpleName(), e);
        }
    }

    @Override
    public T transform(T t) {
        return t;
    }

    @Override
    public String name() {
        return "json-" + type.getName();
    }

    @Override
    public byte systemCodecID() {
        return -1;
    }
}
