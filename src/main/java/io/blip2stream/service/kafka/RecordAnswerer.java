package io.blip2stream.service.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.cluster.RequestStore;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.engine.Task;
import io.blip2stream.service.bus.OutboundRecord;
import io.blip2stream.service.bus.WorkerReply;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.lifecycle.RequestLifecycle;
import io.blip2stream.service.lifecycle.RequestReader;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.blip2stream.service.protocol.ClientText;
import io.blip2stream.service.protocol.RequestDecoder;
import io.blip2stream.service.protocol.ResultJson;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * Answers one Kafka record, exactly one way, whatever the record holds: a result on its task's topic, or a dead
 * letter with the reason. The steps, each a method:
 * <ol>
 *   <li>{@link #decode}: the record to a job (on a worker thread), or the reason it is refused;</li>
 *   <li>{@link #claim}: its id in the cluster's request store, which says whether the id is free, is this very
 *       record answered before or being answered elsewhere, or is another request's (refused, {@code duplicate_id});</li>
 *   <li>infer ({@link RequestLifecycle#infer}), then {@link #answer} or {@link #deadLetter}, through the {@link Output} the ingress gives
 *       (the partition's transaction, or the publisher), then the outcome remembered in the store.</li>
 * </ol>
 * The returned future fails only with {@link NotPublished}: the answer could not be written (the partition moved,
 * or Kafka is down), and the record stays pending, to be read again. Any other failure, anywhere, becomes a dead
 * letter with {@code internal_error} and its reason, so a record never holds its partition or its in-flight place.
 *
 * <p>Outputs are keyed as the input was (its key, byte for byte), or by the request id when it had no key. The
 * request id is the record's own ({@code id} or the header {@code blip2-id}), else {@link RequestDecoder#recordId}.
 */
final class RecordAnswerer {
    private static final Logger LOG = LoggerFactory.getLogger(RecordAnswerer.class);
    /** Where an answer goes: the partition's next transaction, or the publisher. */
    interface Output {
        Future<Void> publish(OutboundRecord r);
    }

    /** The answer was not written: the record stays pending and is read again. */
    static final class NotPublished extends RuntimeException {
        NotPublished(Throwable cause) {
            super(cause.toString(), cause);
        }
    }

    /** Kafka refused the record itself (too large, invalid): writing it again cannot help, a smaller one may. */
    static final class RecordRefused extends RuntimeException {
        RecordRefused(String message) {
            super(message);
        }
    }

    private final Vertx vertx;
    private final Context context;
    private final ServiceConfig config;
    private final ServiceMetrics metrics;
    private final RequestDecoder decoder;
    private final RequestStore store; // null: none (no identity across nodes, no redelivery memory)
    private final RequestLifecycle lifecycle;
    private final RequestReader reader;
    private final OutputRecords outputs;

    RecordAnswerer(Vertx vertx, Context context, ServiceConfig config, ServiceMetrics metrics, RequestDecoder decoder, RequestStore store) {
        this.vertx = vertx;
        this.context = context;
        this.config = config;
        this.metrics = metrics;
        this.decoder = decoder;
        this.store = store;
        this.lifecycle = new RequestLifecycle(vertx, context, config.inference().requestTimeoutMs(), metrics, store);
        this.reader = new RequestReader(vertx, decoder, config);
        this.outputs = new OutputRecords(config.kafka());
    }

    /** Closes the image fetcher's connections. */
    void close() {
        reader.close();
    }

    /** One record on its way: where it is, what it was decoded to (or why not), and what it claims its id with. */
    private record Taken(ConsumerRecord<byte[], byte[]> record, String source, Output out, InferenceJob job, RequestError refused,
                         RequestStore.Claim claim) {
        String id() {
            return claim.id();
        }

        Task task() {
            return job == null ? null : job.task();
        }

        byte[] outputKey() {
            return record.key() != null ? record.key() : id().getBytes(StandardCharsets.UTF_8);
        }
    }

    /** Answers the record; see the class comment for what the future says. */
    Future<Void> answer(ConsumerRecord<byte[], byte[]> record, long acceptedNanos, Output out) {
        String source = where(record);
        Future<Void> answered;
        try {
            answered = decode(record, acceptedNanos)
                    .map(job -> taken(record, source, out, job, null))
                    .recover(e -> Future.succeededFuture(taken(record, source, out, null, refusal(e))))
                    .compose(this::claim);
        } catch (RuntimeException e) {
            answered = Future.failedFuture(e);
        }
        return answered.recover(e -> e instanceof NotPublished ? Future.failedFuture(e) : lastResort(record, source, out, e));
    }

    /**
     * A record whose node died with it in hand {@code crashes} times ({@code kafka.poison_after_crashes}): it is
     * suspected of killing it and dead-lettered ({@code poison_suspected}) without being decoded or run again.
     */
    Future<Void> quarantine(ConsumerRecord<byte[], byte[]> record, int crashes, Output out) {
        String source = where(record);
        LOG.warn("record {} (key {}): the node holding it died {} times: suspected poison, dead-lettered without running it",
                source, ClientText.log(record.key()), crashes);
        metrics.request(null, "poison");
        return deadLetterUndecoded(record, new RequestError(RequestError.POISON_SUSPECTED, "the service died " + crashes
                + " times while it processed this record (kafka.poison_after_crashes); it is not processed again"), out);
    }

    private Taken taken(ConsumerRecord<byte[], byte[]> record, String source, Output out, InferenceJob job, RequestError refused) {
        String id = job != null ? job.id() : refused.requestId() != null ? refused.requestId() : RequestDecoder.recordId(record);
        String task = job != null ? job.task().wireName() : null;
        return new Taken(record, source, out, job, refused,
                new RequestStore.Claim(id, task, "kafka", source, job == null ? null : job.contentDigest(), null));
    }

    // ---- the steps

    /**
     * The record to a job, on a worker thread (images are decoded and texts tokenized there), its image fetched
     * first when it came by reference.
     */
    private Future<InferenceJob> decode(ConsumerRecord<byte[], byte[]> record, long acceptedNanos) {
        return reader.job(() -> {
            crashIfMarked(record);
            return decoder.recordFields(record);
        }, acceptedNanos);
    }

    /**
     * Tests only ({@code -Dblip2.test.crash_marker=TEXT}, never set in production): a record whose value holds the
     * marker kills the process while it is decoded, as a native library aborting on its input would, so that the
     * quarantine of poison records is tested on the path production takes.
     */
    private static final byte[] CRASH_MARKER = System.getProperty("blip2.test.crash_marker") == null ? null
            : System.getProperty("blip2.test.crash_marker").getBytes(StandardCharsets.UTF_8);

    private static void crashIfMarked(ConsumerRecord<byte[], byte[]> record) {
        byte[] v = record.value();
        if (CRASH_MARKER == null || v == null) {
            return;
        }
        outer:
        for (int i = 0; i + CRASH_MARKER.length <= v.length; i++) {
            for (int j = 0; j < CRASH_MARKER.length; j++) {
                if (v[i + j] != CRASH_MARKER[j]) {
                    continue outer;
                }
            }
            LOG.error("record {}-{}@{} holds the test crash marker: the process dies now", record.topic(), record.partition(), record.offset());
            Runtime.getRuntime().halt(134);
        }
    }

    /**
     * Claims the record's id and acts on what the store says: run it, answer it from the store, wait for the node
     * answering it, or refuse it. The store unreachable (the cluster heals after a member dies): as if the id were
     * free (this node owns the Kafka partition now; nobody else answers the record).
     */
    private Future<Void> claim(Taken t) {
        if (store == null) {
            return run(t);
        }
        long deadline = System.currentTimeMillis() + config.inference().requestTimeoutMs();
        return claim(t, deadline);
    }

    private Future<Void> claim(Taken t, long deadline) {
        return store.claim(t.claim(), context).timeout(RequestStore.TIMEOUT_MS, TimeUnit.MILLISECONDS).compose(prev -> {
            RequestStore.Relation rel = store.relate(t.claim(), prev);
            return switch (rel) {
                case NEW, SAME_RECORD_OURS -> run(t);
                case ABANDONED -> takeOver(t);
                case SAME_RECORD_ORPHANED -> {
                    LOG.info("request {} ({}) was claimed by a node that left: taking it over", t.id(), t.source());
                    yield takeOver(t);
                }
                case SAME_RECORD_ANSWERED -> republish(t, prev);
                case SAME_CONTENT_ANSWERED -> republish(t, prev);
                case SAME_RECORD_ELSEWHERE -> System.currentTimeMillis() > deadline ? run(t)
                        : later(50).compose(v -> claim(t, deadline)); // another node is answering it
                case DUPLICATE -> deadLetter(t, new RequestError(RequestError.DUPLICATE_ID, "id " + ClientText.quote(t.id())
                        + " belongs to another request (live, or finished with other content)"), false);
            };
        }, e -> {
            LOG.warn("the cluster's request store did not answer for {} ({}): answering it", t.id(), e.toString());
            return run(t);
        });
    }

    /**
     * Takes the id over from a node that left, then runs the record. A store that does not answer in time (the
     * cluster heals after a member died) holds nothing up: the record runs all the same, its claim written later or
     * not at all, as when the claim itself could not be read.
     */
    private Future<Void> takeOver(Taken t) {
        return store.takeOver(t.claim(), context).timeout(RequestStore.TIMEOUT_MS, TimeUnit.MILLISECONDS).transform(x -> run(t));
    }

    /** The id is this record's: refused records go to the DLT, the others to the model. */
    private Future<Void> run(Taken t) {
        if (t.refused() != null) {
            return deadLetter(t, t.refused(), true);
        }
        return lifecycle.infer(t.job(), "kafka", null)
                .compose(outcome -> outcome.error() != null ? deadLetter(t, outcome.error(), false, true) : answer(t, outcome));
    }

    private Future<Void> answer(Taken t, WorkerReply reply) {
        ObjectNode json = lifecycle.done(reply);
        OutboundRecord out = outputs.result(t.record(), t.outputKey(), t.id(), t.task(), ResultJson.bytes(json));
        return published(t, out, json, null).recover(e -> e instanceof RecordRefused
                ? deadLetter(t, new RequestError(RequestError.INTERNAL, "the answer could not be written to Kafka: " + e.getMessage()), false)
                : Future.failedFuture(e));
    }

    /**
     * A record answered before (this very record, or one of the same content under the same id): its answer is on
     * Kafka already, or is written now from the stored one, keyed as this record.
     */
    private Future<Void> republish(Taken t, JsonNode prev) {
        metrics.request(prev.path("task").asText(null), "redelivered");
        boolean sameRecord = t.source().equals(prev.path("kafka").asText(null));
        if (sameRecord && prev.path("published").asBoolean()) {
            LOG.info("request {} ({}) was answered before; not generated again", t.id(), t.source());
            return Future.succeededFuture();
        }
        LOG.info("request {} ({}) was answered before ({}): publishing the stored answer", t.id(), t.source(),
                sameRecord ? "its answer is not on Kafka" : "the same content under the same id");
        Task task = Task.parse(prev.path("task").asText(null));
        if (prev.hasNonNull("result") && task != null) {
            OutboundRecord out = outputs.result(t.record(), t.outputKey(), t.id(), task, ResultJson.bytes((ObjectNode) prev.get("result")));
            return sameRecord ? published(t, out, prev.get("result"), null) : t.out().publish(out);
        }
        RequestError e = new RequestError(prev.path("error").path("code").asText(RequestError.INTERNAL), prev.path("error").path("message").asText(""));
        return deadLetter(t, e, false, sameRecord);
    }

    private Future<Void> deadLetter(Taken t, RequestError error, boolean own) {
        return deadLetter(t, error, own, own);
    }

    /**
     * Sends the record to the DLT with the reason.
     *
     * @param tell     publish the failure as the request's event (false when the id belongs to another request)
     * @param remember record the failure in the store under the id (false likewise)
     */
    private Future<Void> deadLetter(Taken t, RequestError error, boolean tell, boolean remember) {
        lifecycle.failed(t.id(), t.task() == null ? null : t.task().wireName(), error, tell);
        LOG.info("request {} ({}, key {}) to the DLT: {} {}", ClientText.log(t.id()), t.source(), ClientText.log(t.record().key()),
                error.code(), ClientText.log(error.getMessage()));
        OutboundRecord full = outputs.deadLetter(t.record(), t.outputKey(), t.id(), error, true);
        Future<Void> written = remember ? published(t, full, null, error) : t.out().publish(full);
        return written.recover(e -> {
            if (!(e instanceof RecordRefused)) {
                return Future.failedFuture(e);
            }
            LOG.warn("the dead letter of {} was refused by Kafka ({}): sending it without the record's value and headers",
                    t.source(), e.getMessage());
            OutboundRecord bare = outputs.deadLetter(t.record(), t.outputKey(), t.id(), error, false);
            return remember ? published(t, bare, null, error) : t.out().publish(bare);
        });
    }

    /**
     * A failure no step expected (a bug, or an exception in a step's own code): the record is dead-lettered with
     * {@code internal_error} and the reason, so it neither holds its partition nor is read again forever.
     */
    private Future<Void> lastResort(ConsumerRecord<byte[], byte[]> record, String source, Output out, Throwable e) {
        LOG.error("record {} could not be answered normally; to the DLT", source, e);
        return deadLetterUndecoded(record, new RequestError(RequestError.INTERNAL, "the service failed on this record: "
                + e.getClass().getSimpleName()), out);
    }

    /** A dead letter of a record whose request is not known (never decoded): no event, nothing in the store. */
    private Future<Void> deadLetterUndecoded(ConsumerRecord<byte[], byte[]> record, RequestError error, Output out) {
        byte[] key = record.key() != null ? record.key() : RequestDecoder.recordId(record).getBytes(StandardCharsets.UTF_8);
        return out.publish(outputs.deadLetter(record, key, null, error, true))
                .recover(x -> x instanceof RecordRefused ? out.publish(outputs.deadLetter(record, key, null, error, false))
                        : Future.failedFuture(x))
                .recover(x -> Future.failedFuture(x instanceof NotPublished ? x : new NotPublished(x)));
    }

    // ---- writing

    /**
     * Writes an answer and records it in the store as published. If it could not be written (the partition moved
     * to another node first), records it as not published, so that the partition's new owner, which may be waiting
     * on this node's claim, publishes it instead of generating it again.
     */
    private Future<Void> published(Taken t, OutboundRecord r, JsonNode result, RequestError error) {
        return t.out().publish(r).transform(ar -> {
            if (ar.succeeded()) {
                return lifecycle.remember(t.claim(), result, error, true);
            }
            if (ar.cause() instanceof RecordRefused) {
                return Future.failedFuture(ar.cause());
            }
            return lifecycle.remember(t.claim(), result, error, false).transform(x -> Future.<Void>failedFuture(
                    ar.cause() instanceof NotPublished ? ar.cause() : new NotPublished(ar.cause())));
        });
    }

    // ---- helpers

    /** Where a record is in Kafka, {@code topic/partition/offset}: how the store, the journal and the logs name it. */
    static String where(ConsumerRecord<?, ?> record) {
        return record.topic() + "/" + record.partition() + "/" + record.offset();
    }

    /** A failure of decoding as the reason to refuse the record: a bug there is an internal error, not the client's. */
    private static RequestError refusal(Throwable e) {
        if (e instanceof RequestError re) {
            return re;
        }
        LOG.error("decoding a request failed", e);
        return new RequestError(RequestError.INTERNAL, "decoding the record failed: " + e.getClass().getSimpleName());
    }

    private Future<Void> later(long ms) {
        Promise<Void> p = Promise.promise();
        vertx.setTimer(ms, t -> p.complete());
        return p.future();
    }
}
