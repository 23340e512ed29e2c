package io.blip2stream.service.kafka;

import io.blip2stream.service.config.ServiceConfig;

import java.util.HashMap;
import java.util.Map;

/**
 * The Kafka clients' settings of the ingress, named in one place: the consumer of the input topic and, with exactly-once
 * output, the transactional producers' base. What {@code kafka.consumer} and {@code kafka.producer} set wins.
 */
final class IngressSettings {
    private IngressSettings() {}

    /** The input topic's consumer. */
    static Map<String, String> consumer(ServiceConfig.Kafka k, String bootstrapServers) {
        Map<String, String> c = new HashMap<>();
        c.put("bootstrap.servers", bootstrapServers);
        c.put("group.id", k.groupId());
        c.put("enable.auto.commit", "false");
        c.put("auto.offset.reset", "earliest");
        c.put("max.poll.records", String.valueOf(k.maxPollRecords()));
        // what the consumer holds fetched ahead: a record larger than these still comes (alone), so they bound memory
        // without limiting record size (limits.max_record_bytes does that); 32 and 64 MB here kept up to 64 MB of a
        // burst on the heap
        c.put("max.partition.fetch.bytes", String.valueOf(2 << 20));
        c.put("fetch.max.bytes", String.valueOf(8 << 20));
        // cooperative rebalancing: a node joining or leaving moves only the partitions that must move, so the others
        // keep their work in flight
        c.put("partition.assignment.strategy", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        c.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        c.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        if (k.exactlyOnce()) {
            // committed offsets are read stable (no transaction of the last owner still open on them), and input
            // written in transactions is read once committed
            c.put("isolation.level", "read_committed");
        }
        c.putAll(k.consumer());
        return c;
    }

    /** The base of the transactional producers ({@link PartitionTransactions} adds its own settings). */
    static Map<String, String> producer(ServiceConfig.Kafka k, String bootstrapServers) {
        Map<String, String> p = new HashMap<>(k.producer());
        p.put("bootstrap.servers", bootstrapServers);
        return p;
    }
}
