package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hazelcast.map.IMap;
import io.vertx.core.Context;
import io.vertx.core.Future;

import java.util.function.Predicate;

/**
 * The Kafka records each node has in hand, cluster-wide, by {@code topic/partition/offset}: {@code {"member",
 * "crashes"}}. A node takes a record by writing its marker; when the record's partition moves to another node after
 * the first died, the new owner finds the dead member's marker: one crash more for that record, unless it was
 * waiting behind a suspect then ({@link #armed}); a suspect runs alone, so the count stays on the record that
 * killed the node. Calls are
 * asynchronous: safe on an event loop.
 */
public final class RecordsInFlight {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final IMap<String, String> map;
    private final ClusterCipher cipher;
    private final String member;
    /** the sealed markers this node wrote, by record: {@link #done} removes its own marker only */
    private final java.util.Map<String, String> written = new java.util.concurrent.ConcurrentHashMap<>();
    private final Predicate<String> alive;

    /**
     * @param member this node's cluster member id
     * @param alive  whether a member id is in the cluster now
     */
    public RecordsInFlight(IMap<String, String> map, ClusterCipher cipher, String member, Predicate<String> alive) {
        this.map = map;
        this.cipher = cipher;
        this.member = member;
        this.alive = alive;
    }

    /**
     * Takes the record at {@code source} into this node's hands; completes with how often a node died holding it
     * (its marker's count, one more if the member that holds it now is gone).
     */
    public Future<Integer> take(String source, Context context) {
        return Future.fromCompletionStage(map.getAsync(source), context).compose(old -> {
            int crashes = 0;
            String opened = cipher.open(ClusterBootstrap.RECORDS_IN_FLIGHT_MAP, source, old);
            if (opened != null) {
                JsonNode o = parse(opened);
                crashes = o.path("crashes").asInt(0);
                String holder = o.path("member").asText("");
                if (!holder.equals(member) && !alive.test(holder) && o.path("armed").asBoolean(true)) {
                    crashes++; // its node died with it running (not waiting behind a suspect)
                }
            }
            int n = crashes;
            String now = cipher.seal(ClusterBootstrap.RECORDS_IN_FLIGHT_MAP, source,
                    JSON.createObjectNode().put("member", member).put("crashes", n).toString());
            written.put(source, now);
            return Future.fromCompletionStage(map.setAsync(source, now), context).map(v -> n);
        });
    }

    /**
     * The record waits to start, behind a suspect running alone ({@code false}), or starts ({@code true}): a node that
     * dies holding a waiting record does not count against it (only what ran can have killed the node).
     */
    public Future<Void> armed(String source, int crashes, boolean armed, Context context) {
        if (!written.containsKey(source)) {
            return Future.succeededFuture();
        }
        String now = cipher.seal(ClusterBootstrap.RECORDS_IN_FLIGHT_MAP, source,
                JSON.createObjectNode().put("member", member).put("crashes", crashes).put("armed", armed).toString());
        written.put(source, now);
        return Future.fromCompletionStage(map.setAsync(source, now), context).mapEmpty();
    }

    /** The record is answered (or handed back): its marker goes, if it is still the one this node wrote. */
    public Future<Void> done(String source, Context context) {
        String mine = written.remove(source);
        if (mine == null) {
            return Future.succeededFuture();
        }
        return Future.fromCompletionStage(map.submitToKey(source, new RemoveIfEquals(mine)), context).mapEmpty();
    }

    /** Removes a marker if it is still {@code value} (not one another node wrote since). Runs on the key's owner. */
    static final class RemoveIfEquals implements com.hazelcast.map.EntryProcessor<String, String, Boolean> {
        private static final long serialVersionUID = 1L;
        private final String value;

        RemoveIfEquals(String value) {
            this.value = value;
        }

        @Override
        public Boolean process(java.util.Map.Entry<String, String> entry) {
            if (value.equals(entry.getValue())) {
                entry.setValue(null);
                return true;
            }
            return false;
        }
    }

    private static JsonNode parse(String s) {
        try {
            return JSON.readTree(s);
        } catch (Exception e) {
            return JSON.createObjectNode();
        }
    }
}
