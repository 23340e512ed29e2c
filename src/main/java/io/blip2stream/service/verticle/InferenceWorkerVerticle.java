package io.blip2stream.service.verticle;

import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.InferenceResult;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.Scheduler;
import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.RequestEvent;
import io.blip2stream.service.bus.TokenEvent;
import io.blip2stream.service.bus.WorkerReply;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.blip2stream.service.protocol.ResultJson;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.VerticleBase;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The inference worker of one device: a worker verticle that loads the device's models, takes jobs from the event
 * bus and hands them to the device's {@link Scheduler} (continuous or static batching, on a thread of its own). What
 * the scheduler reports goes back to the event bus in order: a job's state and tokens to the relay, then its
 * outcome as the reply to the job's message.
 */
public final class InferenceWorkerVerticle extends VerticleBase {
    private static final Logger LOG = LoggerFactory.getLogger(InferenceWorkerVerticle.class);

    private static final io.vertx.core.eventbus.DeliveryOptions RELAY = new io.vertx.core.eventbus.DeliveryOptions().setLocalOnly(true);

    private final String device;
    private final String nodeId;
    private final Supplier<InferenceRunner> loader;
    private final int maxBatchSize;
    private final long maxWaitMs;
    private final long maxJoinWaitMs;
    private final ServiceMetrics metrics;
    private final boolean continuous;
    private final Map<InferenceJob, Message<InferenceJob>> waiting = java.util.Collections.synchronizedMap(new java.util.IdentityHashMap<>());
    private InferenceRunner runner;
    private Scheduler scheduler;
    private Context context;
    private Promise<Void> schedulerStopped;
    private MessageConsumer<InferenceJob> consumer;

    /** @param nodeId the node named in results */
    public InferenceWorkerVerticle(String device, String nodeId, Supplier<InferenceRunner> loader, boolean continuous, int maxBatchSize,
                                   long maxWaitMs, long maxJoinWaitMs, ServiceMetrics metrics) {
        this.nodeId = nodeId;
        this.continuous = continuous;
        this.device = device;
        this.loader = loader;
        this.maxBatchSize = maxBatchSize;
        this.maxWaitMs = maxWaitMs;
        this.maxJoinWaitMs = maxJoinWaitMs;
        this.metrics = metrics;
    }

    public InferenceRunner runner() {
        return runner;
    }

    @Override
    public Future<?> start() {
        long t0 = System.nanoTime();
        runner = loader.get(); // a worker thread: loading the models may block
        long warm = 0;
        for (io.blip2stream.model.Blip2Model model : new io.blip2stream.model.Blip2Model[] {runner.generationModel(), runner.retrievalModel()}) {
            if (model != null) {
                warm += model.warmUp(); // before ready: the first request must not pay for the first calls
            }
        }
        LOG.info("inference worker on {} ready in {} ms (warm-up {} ms): generation {} (dtype {}, decode: {}), retrieval {}", device,
                (System.nanoTime() - t0) / 1_000_000, warm,
                runner.generationModel() == null ? "none" : runner.generationModel().dir(),
                runner.generationModel() == null ? "none" : runner.generationModel().precision(),
                runner.generationModel() == null ? "none" : runner.generationModel().generation().decodePath(),
                runner.retrievalModel() == null ? "none" : runner.retrievalModel().dir());
        for (io.blip2stream.model.Blip2Model model : new io.blip2stream.model.Blip2Model[] {runner.generationModel(), runner.retrievalModel()}) {
            if (model != null && io.blip2stream.model.nn.LowPrecisionWeight.slowKernels(model.precision())) {
                LOG.warn("{}: {} weights on {}", model.name(), model.precision(),
                        io.blip2stream.model.nn.LowPrecisionWeight.kernels(model.precision()));
            }
            if (model != null && metrics != null) {
                io.micrometer.core.instrument.Gauge.builder("blip2_model_dtype_info", () -> 1)
                        .description("the precision a model's weights are kept in (model.dtype, auto resolved): 1 per model and device")
                        .tag("model", model.name()).tag("device", device).tag("dtype", model.precision().id())
                        .register(metrics.registry());
            }
        }
        context = vertx.getOrCreateContext();
        schedulerStopped = Promise.promise();
        scheduler = Scheduler.of(continuous, runner, device, maxBatchSize, maxWaitMs, maxJoinWaitMs, new SchedulerEvents()).start();
        consumer = vertx.eventBus().localConsumer(Addresses.INFERENCE, this::submit);
        return consumer.completion();
    }

    private void submit(Message<InferenceJob> message) {
        metrics.queueDepth().incrementAndGet();
        waiting.put(message.body(), message);
        scheduler.submit(message.body());
    }

    /**
     * The scheduler's reports, made on its thread and handed to this verticle's context in order: a request's
     * tokens reach the event bus before its reply. Events are handed over once a pass (an admission or a decode
     * step: up to one token of every row) rather than once a token: each hand-over wakes threads that take the
     * CPU from the model's.
     */
    private final class SchedulerEvents implements Scheduler.Listener {
        /** events of the current pass not handed over yet (the batcher's thread only) */
        private List<Object> pending = new ArrayList<>();

        @Override
        public void onAdmitted(InferenceJob job) {
            metrics.queueDepth().decrementAndGet();
            pending.add(RequestEvent.running(job.id()));
        }

        @Override
        public void onToken(InferenceJob job, int index, int tokenId, String text) {
            pending.add(new TokenEvent(job.id(), index, tokenId, text, job.stream()));
        }

        @Override
        public void onPassEnd() {
            if (!pending.isEmpty()) {
                List<Object> events = handOver();
                context.runOnContext(v -> relay(events));
            }
        }

        private List<Object> handOver() {
            List<Object> events = pending;
            pending = new ArrayList<>();
            return events;
        }

        private void relay(List<Object> events) {
            for (Object e : events) {
                vertx.eventBus().send(Addresses.RELAY, e, RELAY);
            }
        }

        @Override
        public boolean isCancelled(InferenceJob job) {
            return job.cancelled();
        }

        @Override
        public void onOutcome(InferenceRunner.Outcome o) {
            if (o.result() != null && o.result().output() instanceof InferenceResult.Generated g) {
                metrics.tokens(g.tokenIds().length);
            }
            Message<InferenceJob> m = waiting.remove(o.job());
            // its tokens (and those before them) first, then how it ended: one route, in order
            WorkerReply reply = o.error() != null ? WorkerReply.failed(o) : new WorkerReply(o, ResultJson.of(o.result(), nodeId));
            pending.add(o.error() != null ? RequestEvent.failed(o.job().id(), o.error().code(), o.error().getMessage())
                    : RequestEvent.done(o.job().id(), reply.resultJson()));
            List<Object> events = handOver();
            context.runOnContext(v -> {
                relay(events);
                if (m != null) {
                    m.reply(reply);
                }
            });
        }

        @Override
        public void onStep(int rows) {
            metrics.batch(rows);
        }

        @Override
        public void onStopped() {
            List<Object> events = handOver();
            context.runOnContext(v -> {
                relay(events);
                schedulerStopped.tryComplete();
            });
        }
    }

    @Override
    public Future<?> stop() {
        Future<Void> unregistered = consumer == null ? Future.succeededFuture() : consumer.unregister();
        if (scheduler == null) {
            return unregistered.onComplete(v -> closeRunner());
        }
        // the scheduler finishes what was handed over (queued and running), then its thread ends
        return unregistered.compose(v -> {
            scheduler.close();
            return schedulerStopped.future();
        }).onComplete(v -> closeRunner());
    }

    private void closeRunner() {
        if (runner != null) {
            runner.close();
        }
    }
}
