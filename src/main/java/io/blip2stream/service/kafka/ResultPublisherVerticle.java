package io.blip2stream.service.kafka;

import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.OutboundRecord;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.eventbus.Message;
import io.vertx.kafka.client.producer.KafkaProducer;
import io.vertx.kafka.client.producer.KafkaProducerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.HashMap;
import java.util.Map;

/**
 * Writes results, token records and dead letters to Kafka with an idempotent producer ({@code acks=all}) and
 * answers each request on the event bus once Kafka has acknowledged the record, so that offsets are committed
 * only after their output is safe.
 */
public final class ResultPublisherVerticle extends VerticleBase {
    private static final Logger LOG = LoggerFactory.getLogger(ResultPublisherVerticle.class);

    private static final com.fasterxml.jackson.databind.ObjectMapper JSON = new com.fasterxml.jackson.databind.ObjectMapper();

    private final Map<String, String> config;
    private final String tokensTopic;
    private final io.blip2stream.service.config.ServiceConfig.CloudEvents cloudEvents;
    private KafkaProducer<byte[], byte[]> producer;
    /** The failure code of a record Kafka refused itself (too large, invalid): sending it again cannot help. */
    public static final int RECORD_REFUSED = 413;

    /**
     * @param tokensTopic where token events of streaming requests go, one record per token keyed by request id
     * @param cloudEvents whether token records carry ce_* headers (type {@code io.blip2stream.token}), and their source
     */
    public ResultPublisherVerticle(String bootstrapServers, Map<String, String> extra, String tokensTopic,
                                   io.blip2stream.service.config.ServiceConfig.CloudEvents cloudEvents) {
        this.tokensTopic = tokensTopic;
        this.cloudEvents = cloudEvents;
        Map<String, String> c = new HashMap<>();
        c.put("bootstrap.servers", bootstrapServers);
        c.put("acks", "all");
        c.put("enable.idempotence", "true");
        c.put("max.in.flight.requests.per.connection", "5");
        c.put("linger.ms", "2");
        c.put("compression.type", "lz4");
        c.put("max.request.size", String.valueOf(32 << 20));
        c.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        c.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
        c.putAll(extra);
        this.config = c;
    }

    @Override
    public Future<?> start() {
        producer = KafkaProducer.create(vertx, config);
        producer.exceptionHandler(e -> LOG.error("Kafka producer error", e));
        return Future.all(
                vertx.eventBus().<OutboundRecord>localConsumer(Addresses.PUBLISH, this::publish).completion(),
                vertx.eventBus().localConsumer(Addresses.REQUEST_EVENTS, m -> {
                    if (m.body() instanceof io.blip2stream.service.bus.TokenEvent t) {
                        token(t); // this node's tokens: the node that generated them writes their records
                    }
                }).completion());
    }

    private void token(io.blip2stream.service.bus.TokenEvent t) {
        if (!t.toKafka()) {
            return;
        }
        var o = JSON.createObjectNode();
        o.put("id", t.id());
        o.put("index", t.index());
        o.put("token_id", t.tokenId());
        o.put("text", t.text());
        try {
            KafkaProducerRecord<byte[], byte[]> record = KafkaProducerRecord.create(tokensTopic,
                    t.id().getBytes(java.nio.charset.StandardCharsets.UTF_8), JSON.writeValueAsBytes(o));
            if (cloudEvents.binaryOutputs()) {
                for (org.apache.kafka.common.header.Header h : io.blip2stream.service.protocol.CloudEventRecords.binaryHeaders(tokensTopic,
                        cloudEvents.source(), t.id() + "/" + t.index() + "/" + t.tokenId(), "token", t.id(), "application/json")) {
                    record.addHeader(io.vertx.kafka.client.producer.KafkaHeader.header(h.key(), Buffer.buffer(h.value())));
                }
            }
            producer.send(record)
                    .onFailure(e -> LOG.warn("could not write a token of {}: {}", t.id(), e.toString()));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private void publish(Message<OutboundRecord> message) {
        OutboundRecord r = message.body();
        KafkaProducerRecord<byte[], byte[]> record = KafkaProducerRecord.create(r.topic(), r.key(), r.value());
        for (OutboundRecord.Header h : r.headers()) {
            record.addHeader(io.vertx.kafka.client.producer.KafkaHeader.header(h.name(), h.value() == null ? null : Buffer.buffer(h.value())));
        }
        producer.send(record).onComplete(ar -> {
            if (ar.succeeded()) {
                message.reply(null);
            } else {
                LOG.warn("could not write {} to {}: {}", io.blip2stream.service.protocol.ClientText.log(r.keyText()), r.topic(), ar.cause().toString());
                boolean refused = PartitionTransactions.refusesRecord(ar.cause());
                message.fail(refused ? RECORD_REFUSED : 503, "Kafka did not take the record: " + ar.cause());
            }
        });
    }

    @Override
    public Future<?> stop() {
        return producer == null ? Future.succeededFuture() : producer.flush().compose(v -> producer.close());
    }
}
