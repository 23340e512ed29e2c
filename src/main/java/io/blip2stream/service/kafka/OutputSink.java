package io.blip2stream.service.kafka;

import io.blip2stream.service.bus.OutboundRecord;
import io.vertx.core.Future;
import io.vertx.kafka.client.common.TopicPartition;
import io.vertx.kafka.client.consumer.KafkaConsumerRecord;

import java.util.Set;

/**
 * Where the ingress's answers go and how its offsets are committed, chosen once at start by
 * {@code kafka.exactly_once}: {@link TransactionalOutput} (a partition's answers and its offset in one Kafka
 * transaction) or {@link AcknowledgedOutput} (answers through the result publisher, offsets committed once Kafka
 * acknowledged them: at least once). Both keep their offsets in the ingress's {@link PartitionLedger}.
 *
 * <p>Used on the ingress's event loop only.
 */
sealed interface OutputSink permits AcknowledgedOutput, TransactionalOutput {

    /** Partitions were assigned to this node (and entered in the ledger): their offsets start. */
    void assigned(Set<TopicPartition> tps);

    /** Partitions are being revoked (still in the ledger): what is answered is committed. */
    void revoked(Set<TopicPartition> tps);

    /**
     * The offsets a record just read goes into, or null when it is not taken now: its partition moved meanwhile
     * (its next owner reads it), or is not ready yet (the sink hands the record back once it is).
     */
    PartitionOffsets offsetsFor(KafkaConsumerRecord<byte[], byte[]> record);

    /**
     * Writes the answer to the record at {@code offset} of {@code tp}, taken into {@code p}. Completes once it is
     * written for good; fails with {@link RecordAnswerer.RecordRefused} when Kafka refused the record itself, else
     * with {@link RecordAnswerer.NotPublished}.
     */
    Future<Void> publish(TopicPartition tp, PartitionOffsets p, long offset, OutboundRecord answer);

    /** Commits what is answered and not committed yet. */
    Future<Void> commit();

    /**
     * Whether a stopping node with others in its cluster leaves the consumer group before it drains, so that its
     * partitions move at once (their answers still in flight reach the new owners through the request store).
     */
    boolean handsOverBeforeDrain();

    /** After the drain: the last commits, then the sink's clients close. */
    Future<Void> close();
}
