package io.blip2stream.service.bus;

import io.vertx.core.buffer.Buffer;
import io.vertx.core.eventbus.MessageCodec;

/**
 * A codec for objects that only travel inside one JVM: {@code transform} hands the same instance over, so an image
 * or a result is never copied between verticles. Sending one across a clustered event bus fails loudly.
 */
public final class LocalCodec<T> implements MessageCodec<T, T> {
    private final Class<T> type;

    public LocalCodec(Class<T> type) {
        this.type = type;
    }

    @Override
    public void encodeToWire(Buffer buffer, T t) {
        throw new UnsupportedOperationException(type.getSimpleName() + " travels only on the local event bus");
    }

    @Override
    public T decodeFromWire(int pos, Buffer buffer) {
        throw new UnsupportedOperationException(type.getSimpleName() + " travels only on the local event bus");
    }

    @Override
    public T transform(T t) {
        return t;
    }

    @Override
    public String name() {
        return "local-" + type.getName();
    }

    @Override
    public byte systemCodecID() {
        return -1;
    }
}
