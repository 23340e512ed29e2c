package io.blip2stream.service.kafka;

import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.OutboundRecord;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.kafka.client.common.TopicPartition;
import io.vertx.kafka.client.consumer.KafkaConsumer;
import io.vertx.kafka.client.consumer.KafkaConsumerRecord;
import io.vertx.kafka.client.consumer.OffsetAndMetadata;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Map;
import java.util.Set;

/**
 * At-least-once output ({@code kafka.exactly_once: false}): answers go through the {@link ResultPublisherVerticle}
 * and count once Kafka acknowledged them; per partition, the lowest offset not answered yet is committed
 * periodically and when the partition is revoked. A node that dies between an answer and its commit answers the
 * record again.
 */
final class AcknowledgedOutput implements OutputSink {
    private static final Logger LOG = LoggerFactory.getLogger(AcknowledgedOutput.class);
    /** How long the publisher may take to have a record acknowledged. */
    private static final long PUBLISH_TIMEOUT_MS = 120_000;

    private final Vertx vertx;
    private final PartitionLedger ledger;
    private final KafkaConsumer<byte[], byte[]> consumer;

    AcknowledgedOutput(Vertx vertx, PartitionLedger ledger, KafkaConsumer<byte[], byte[]> consumer) {
        this.vertx = vertx;
        this.ledger = ledger;
        this.consumer = consumer;
    }

    @Override
    public void assigned(Set<TopicPartition> tps) {
        tps.forEach(ledger::getOrOpen); // kept across revocations: offsets only ever move forward
    }

    @Override
    public void revoked(Set<TopicPartition> tps) {
        commit(); // what is done so far
    }

    @Override
    public PartitionOffsets offsetsFor(KafkaConsumerRecord<byte[], byte[]> record) {
        return ledger.getOrOpen(new TopicPartition(record.topic(), record.partition()));
    }

    @Override
    public Future<Void> publish(TopicPartition tp, PartitionOffsets p, long offset, OutboundRecord answer) {
        return vertx.eventBus().request(Addresses.PUBLISH, answer, Addresses.local(PUBLISH_TIMEOUT_MS)).<Void>mapEmpty()
                .recover(e -> Future.failedFuture(e instanceof ReplyException re && re.failureCode() == ResultPublisherVerticle.RECORD_REFUSED
                        ? new RecordAnswerer.RecordRefused(re.getMessage()) : new RecordAnswerer.NotPublished(e)));
    }

    @Override
    public Future<Void> commit() {
        Map<TopicPartition, OffsetAndMetadata> offsets = ledger.toCommit();
        if (offsets.isEmpty()) {
            return Future.succeededFuture();
        }
        return consumer.commit(offsets).<Void>mapEmpty().onFailure(e -> {
            LOG.warn("commit failed: {}", e.toString());
            ledger.commitFailed(offsets.keySet()); // tried again next time
        });
    }

    @Override
    public boolean handsOverBeforeDrain() {
        return false; // it commits what is done after the drain, then leaves
    }

    @Override
    public Future<Void> close() {
        return commit();
    }
}
