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
 * {@code {"status", "task", "source", "owner"?, "result"?, "error"?, "published", "kafka"?}}. Any node answers
 * {@code GET /v1/requests/{id}} from it, and a request Kafka delivers again after it was answered is not generated
 * again. Calls are asynchronous: safe on an event loop.
 */
public final class RequestStore {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final IMap<String, String> map;
    private final long ttlMs;
    private final String member;
    private final java.util.function.Predicate<String> alive;

    /**
     * @param member this node's cluster member id (claims name it)
     * @param alive  whether a member id is in the cluster now
     */
    public RequestStore(IMap<String, String> map, long ttlMs, String member, java.util.function.Predicate<String> alive) {
        this.map = map;
        this.ttlMs = ttlMs;
        this.member = member;
        this.alive = alive;
    }

    /** Whether the member that claimed a request is still in the cluster. */
    public boolean claimantAlive(JsonNode state) {
        String m = state.path("member").asText(null);
        return m != null && alive.test(m);
    }

    public String member() {
        return member;
    }

    /**
     * Claims a Kafka record for this node: "running" here. Returns the state already stored if another claim or
     * answer exists for the id (then nothing is written), else null.
     */
    public Future<ObjectNode> claim(String id, String task, String kafkaRecord, Context context) {
        ObjectNode o = JSON.createObjectNode().put("status", "running").put("task", task).put("source", "kafka")
                .put("kafka", kafkaRecord).put("member", member);
        // an entry processor: an asynchronous putIfAbsent (the map's TTL applies), no thread blocked
        return Future.fromCompletionStage(map.submitToKey(id, new PutIfAbsent(o.toString())), context).map(RequestStore::parse);
    }

    /** Takes over a claim whose member is gone. */
    public Future<Void> takeOver(String id, ObjectNode old, String task, String kafkaRecord, Context context) {
        ObjectNode o = JSON.createObjectNode().put("status", "running").put("task", task).put("source", "kafka")
                .put("kafka", kafkaRecord).put("member", member);
        return Future.fromCompletionStage(map.setAsync(id, o.toString(), ttlMs, TimeUnit.MILLISECONDS), context);
    }

    /** Sets the value if there is none; returns the value there was (null if none). Runs on the key's owner. */
    static final class PutIfAbsent implements com.hazelcast.map.EntryProcessor<String, String, String> {
        private static final long serialVersionUID = 1L;
        private final String value;

        PutIfAbsent(String value) {
            this.value = value;
        }

        @Override
        public String process(java.util.Map.Entry<String, String> entry) {
            String old = entry.getValue();
            if (old == null) {
                entry.setValue(value);
            }
            return old;
        }
    }

    private static ObjectNode parse(String s) {
        if (s == null) {
            return null;
        }
        try {
            return (ObjectNode) JSON.readTree(s);
        } catch (Exception e) {
            return null;
        }
    }

    /** The stored state of a request, or null. Completes on {@code context}. */
    public Future<ObjectNode> get(String id, Context context) {
        return Future.fromCompletionStage(map.getAsync(id), context).map(RequestStore::parse);
    }

    /**
     * Records a finished request: done with its result, or failed with its error; published: on its topic;
     * owner: who submitted it over HTTP or WebSocket (a token's fingerprint), or null.
     */
    public Future<Void> finished(String id, String task, String source, String owner, JsonNode result, String errorCode,
                                 String errorMessage, boolean published, String kafkaRecord, Context context) {
        ObjectNode o = JSON.createObjectNode();
        o.put("status", result != null ? "done" : "failed");
        if (task != null) {
            o.put("task", task);
        }
        if (source != null) {
            o.put("source", source);
        }
        if (owner != null) {
            o.put("owner", owner);
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
