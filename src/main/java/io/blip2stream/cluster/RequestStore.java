package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.hazelcast.map.IMap;
import io.vertx.core.Context;
import io.vertx.core.Future;

import java.util.concurrent.TimeUnit;

/**
 * The cluster's memory of finished requests: a Hazelcast map (with backups and a TTL) from request id to
 * {@code {"status", "task", "source", "result"?, "error"?, "published", "kafka"?}}. Any node answers
 * {@code GET /v1/requests/{id}} from it, and a request Kafka delivers again after it was answered is not generated
 * again. Calls are asynchronous: safe on an event loop.
 */
public final class RequestStore {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final IMap<String, String> map;
    private final long ttlMs;

    public RequestStore(IMap<String, String> map, long ttlMs) {
        this.map = map;
        this.ttlMs = ttlMs;
    }

    /** The stored state of a request, or null. Completes on {@code context}. */
    public Future<ObjectNode> get(String id, Context context) {
        return Future.fromCompletionStage(map.getAsync(id), context).map(s -> {
            if (s == null) {
                return null;
            }
            try {
                return (ObjectNode) JSON.readTree(s);
            } catch (Exception e) {
                return null;
            }
        });
    }

    /** Records a finished request: done with its result, or failed with its error; published: on its topic. */
    public Future<Void> finished(String id, String task, String source, JsonNode result, String errorCode, String errorMessage,
                                 boolean published, String kafkaRecord, Context context) {
        ObjectNode o = JSON.createObjectNode();
        o.put("status", result != null ? "done" : "failed");
        if (task != null) {
            o.put("task", task);
        }
        if (source != null) {
            o.put("source", source);
        }
        if (result != null) {
            o.set("result", result);
        }
        if (errorCode != null) {
            o.putObject("error").put("code", errorCode).put("message", errorMessage);
        }
        o.put("published", published);
        if (kafkaRecord != null) {
            o.put("kafka", kafkaRecord); // topic/partition/offset: a redelivery of this very record is recognised
        }
        return Future.fromCompletionStage(map.setAsync(id, o.toString(), ttlMs, TimeUnit.MILLISECONDS), context);
    }
}
