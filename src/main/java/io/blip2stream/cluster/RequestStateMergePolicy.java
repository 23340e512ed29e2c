package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.spi.merge.SplitBrainMergePolicy;
import com.hazelcast.spi.merge.SplitBrainMergeTypes.MapMergeTypes;

/**
 * How the request-state map heals after a network split: when the smaller half rejoins the larger, each request keeps
 * its most advanced state, wherever it was written. Answered and on Kafka beats answered (published false) beats
 * running (a claim); between equals the later update wins. Hazelcast's default ({@code PutIfAbsentMergePolicy}) keeps
 * the larger half's entry, so a request claimed before the split and answered by the smaller half would read as
 * running again after the heal.
 */
public final class RequestStateMergePolicy implements SplitBrainMergePolicy<Object, MapMergeTypes<Object, Object>, Object> {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The cluster's key, to read the states (Hazelcast creates the policy itself): set when a member starts. */
    static volatile ClusterCipher cipher;

    /** The key the states are sealed with (the member's own, set before it joins). */
    public static void use(ClusterCipher c) {
        cipher = c;
    }

    @Override
    public Object merge(MapMergeTypes<Object, Object> merging, MapMergeTypes<Object, Object> existing) {
        if (existing == null) {
            return merging.getRawValue();
        }
        int a = rank(merging.getKey(), merging.getValue());
        int b = rank(existing.getKey(), existing.getValue());
        if (a != b) {
            return a > b ? merging.getRawValue() : existing.getRawValue();
        }
        return merging.getLastUpdateTime() >= existing.getLastUpdateTime() ? merging.getRawValue() : existing.getRawValue();
    }

    /** 0: unreadable or running; 1: answered, not on Kafka; 2: answered and on Kafka (or not a Kafka request). */
    static int rank(Object key, Object value) {
        ClusterCipher c = cipher;
        if (!(value instanceof String sealed) || c == null) {
            return 0;
        }
        String s = c.open(ClusterBootstrap.REQUESTS_MAP, String.valueOf(key), sealed);
        if (s == null) {
            return 0; // a state that does not open ranks last
        }
        try {
            JsonNode state = JSON.readTree(s);
            String status = state.path("status").asText();
            if (!status.equals("done") && !status.equals("failed")) {
                return 0;
            }
            return state.path("published").asBoolean(true) ? 2 : 1;
        } catch (Exception e) {
            return 0;
        }
    }

    @Override
    public void writeData(ObjectDataOutput out) {
        // no state
    }

    @Override
    public void readData(ObjectDataInput in) {
        // no state
    }
}
