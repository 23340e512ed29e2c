package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.hazelcast.map.IMap;
import io.vertx.core.Context;
import io.vertx.core.Future;

import java.util.concurrent.TimeUnit;

/**
 * The cluster's memory of requests, by id: a Hazelcast map (with backups and a TTL) from request id to
 * {@code {"status", "task", "source", "owner"?, "digest"?, "member"?, "kafka"?, "result"?, "error"?, "published"?}}. It makes an id name one request across every ingress and node: a request claims its id before it
 * runs ({@link #claim}), and {@link #relate} says what an earlier claim means for it. Any node answers
 * {@code GET /v1/requests/{id}} from it, and a Kafka record delivered again is recognised as itself. Calls are
 * asynchronous: safe on an event loop. Values are sealed under the cluster's key ({@link ClusterCipher}): one that does
 * not open is absent.
 */
public final class RequestStore {
    private static final ObjectMapper JSON = new ObjectMapper();
    /**
     * How long a caller waits for the store before going on without it: it answers in milliseconds, except while the
     * cluster moves the partitions of a member that died.
     */
    public static final long TIMEOUT_MS = 3000;
    private final IMap<String, String> map;
    private final ClusterCipher cipher;
    private final long ttlMs;
    private final String member;
    private final java.util.function.Predicate<String> alive;

    /**
     * @param member this node's cluster member id (claims name it)
     * @param alive  whether a member id is in the cluster now
     */
    public RequestStore(IMap<String, String> map, ClusterCipher cipher, long ttlMs, String member,
                        java.util.function.Predicate<String> alive) {
        this.map = map;
        this.cipher = cipher;
        this.ttlMs = ttlMs;
        this.member = member;
        this.alive = alive;
    }

    /**
     * What a request claims its id with.
     *
     * @param source      kafka, http or websocket
     * @param kafkaRecord the Kafka record it is ({@code topic/partition/offset}), or null
     * @param digest      a fingerprint of its content: the same content sent again is recognised
     * @param owner       who sent it over HTTP or WebSocket (a token's fingerprint), or null
     */
    public record Claim(String id, String task, String source, String kafkaRecord, String digest, String owner) {}

    /** How a request relates to the state already stored under its id. */
    public enum Relation {
        /** nothing was there: the id is this request's now */
        NEW,
        /** this very Kafka record, answered before: not run again */
        SAME_RECORD_ANSWERED,
        /** this very Kafka record, claimed by this node before (it read the record again) */
        SAME_RECORD_OURS,
        /** this very Kafka record, being answered by another live node (a rebalance moved it): wait for its answer */
        SAME_RECORD_ELSEWHERE,
        /** this very Kafka record, claimed by a node that is gone: take it over */
        SAME_RECORD_ORPHANED,
        /** another request of the same content and owner, finished: its answer is this one's too */
        SAME_CONTENT_ANSWERED,
        /** another request with this id whose node is gone, unfinished: the id is free again */
        ABANDONED,
        /** another request with this id, live, or finished with a different content or owner: refused */
        DUPLICATE
    }

    /** What an earlier state {@code prev} under the id means for {@code mine}. */
    public Relation relate(Claim mine, JsonNode prev) {
        if (prev == null) {
            return Relation.NEW;
        }
        boolean running = "running".equals(prev.path("status").asText());
        if (mine.kafkaRecord() != null && mine.kafkaRecord().equals(prev.path("kafka").asText(null))) {
            if (!running) {
                return Relation.SAME_RECORD_ANSWERED;
            }
            if (member.equals(prev.path("member").asText())) {
                return Relation.SAME_RECORD_OURS;
            }
            return claimantAlive(prev) ? Relation.SAME_RECORD_ELSEWHERE : Relation.SAME_RECORD_ORPHANED;
        }
        if (running) {
            return claimantAlive(prev) ? Relation.DUPLICATE : Relation.ABANDONED;
        }
        boolean sameContent = mine.digest() != null && mine.digest().equals(prev.path("digest").asText(null));
        boolean sameOwner = java.util.Objects.equals(mine.owner(), prev.path("owner").asText(null));
        return sameContent && sameOwner ? Relation.SAME_CONTENT_ANSWERED : Relation.DUPLICATE;
    }

    /** Whether the member that claimed a request is still in the cluster. */
    public boolean claimantAlive(JsonNode state) {
        String m = state.path("member").asText(null);
        return m != null && alive.test(m);
    }

    public String member() {
        return member;
    }

    private ObjectNode running(Claim c) {
        return state("running", c);
    }

    /** A state of the request {@code c} claims: its status, and the claim's parts (which recognise it later). */
    private ObjectNode state(String status, Claim c) {
        ObjectNode o = JSON.createObjectNode().put("status", status);
        if (c.task() != null) {
            o.put("task", c.task());
        }
        if (c.source() != null) {
            o.put("source", c.source());
        }
        if (c.kafkaRecord() != null) {
            o.put("kafka", c.kafkaRecord()); // topic/partition/offset: a redelivery of this very record is recognised
        }
        if (c.owner() != null) {
            o.put("owner", c.owner());
        }
        if (c.digest() != null) {
            o.put("digest", c.digest());
        }
        return o.put("member", member);
    }

    /**
     * Claims an id for a request: "running" on this node. Returns the state already stored if there is one (then
     * nothing is written; {@link #relate} says what it means), else null.
     */
    public Future<ObjectNode> claim(Claim c, Context context) {
        // an entry processor: an asynchronous putIfAbsent (the map's TTL applies), no thread blocked
        String sealed = seal(c.id(), running(c));
        return Future.fromCompletionStage(map.submitToKey(c.id(), new PutIfAbsent(sealed)), context).compose(old -> {
            if (old == null) {
                return Future.succeededFuture(null);
            }
            ObjectNode prev = parse(c.id(), old);
            if (prev == null) {
                // a value that does not open (a foreign member's, or damaged) is absent: the id is this request's
                return Future.fromCompletionStage(map.setAsync(c.id(), sealed, ttlMs, TimeUnit.MILLISECONDS), context)
                        .map(v -> (ObjectNode) null);
            }
            return Future.succeededFuture(prev);
        });
    }

    /** A Kafka record's claim, for the tests that write states directly. */
    public Future<ObjectNode> claim(String id, String task, String kafkaRecord, Context context) {
        return claim(new Claim(id, task, "kafka", kafkaRecord, null, null), context);
    }

    /** Takes over the id from a claim whose node is gone ({@link Relation#SAME_RECORD_ORPHANED}, {@link Relation#ABANDONED}). */
    public Future<Void> takeOver(Claim c, Context context) {
        return Future.fromCompletionStage(map.setAsync(c.id(), seal(c.id(), running(c)), ttlMs, TimeUnit.MILLISECONDS), context);
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

    /** A stored value, opened: null when absent, or when it does not open (then it is counted as rejected). */
    private ObjectNode parse(String id, String sealed) {
        String s = cipher.open(ClusterBootstrap.REQUESTS_MAP, id, sealed);
        if (s == null) {
            return null;
        }
        try {
            return (ObjectNode) JSON.readTree(s);
        } catch (Exception e) {
            return null;
        }
    }

    private String seal(String id, ObjectNode state) {
        return cipher.seal(ClusterBootstrap.REQUESTS_MAP, id, state.toString());
    }

    /** The stored state of a request, or null. Completes on {@code context}. */
    public Future<ObjectNode> get(String id, Context context) {
        return Future.fromCompletionStage(map.getAsync(id), context).map(v -> parse(id, v));
    }

    /**
     * Records a finished request: done with its result, or failed with its error; published: on its topic. The
     * claim's parts stay (a request with the same content sent again is recognised by them).
     */
    public Future<Void> finished(Claim c, JsonNode result, String errorCode, String errorMessage, boolean published, Context context) {
        ObjectNode o = state(result != null ? "done" : "failed", c);
        if (result != null) {
            o.set("result", result);
        }
        if (errorCode != null) {
            o.putObject("error").put("code", errorCode).put("message", errorMessage);
        }
        o.put("published", published);
        return Future.fromCompletionStage(map.setAsync(c.id(), seal(c.id(), o), ttlMs, TimeUnit.MILLISECONDS), context);
    }

    /** {@link #finished(Claim, JsonNode, String, String, boolean, Context)} for the tests that write states directly. */
    public Future<Void> finished(String id, String task, String source, String owner, JsonNode result, String errorCode,
                                 String errorMessage, boolean published, String kafkaRecord, Context context) {
        return finished(new Claim(id, task, source, kafkaRecord, null, owner), result, errorCode, errorMessage, published, context);
    }
}
