package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.net.http.WebSocket;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;

/** A JDK WebSocket listener that joins each text message's parts and hands it on as JSON. */
public final class JsonFrameListener implements WebSocket.Listener {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final StringBuilder buf = new StringBuilder();
    private final Consumer<JsonNode> onFrame;
    private final Consumer<Exception> onError;

    public JsonFrameListener(Consumer<JsonNode> onFrame, Consumer<Exception> onError) {
        this.onFrame = onFrame;
        this.onError = onError;
    }

    @Override
    public CompletionStage<?> onText(WebSocket w, CharSequence data, boolean last) {
        buf.append(data);
        if (last) {
            try {
                onFrame.accept(JSON.readTree(buf.toString()));
            } catch (Exception e) {
                onError.accept(e);
            }
            buf.setLength(0);
        }
        w.request(1);
        return null;
    }
}
