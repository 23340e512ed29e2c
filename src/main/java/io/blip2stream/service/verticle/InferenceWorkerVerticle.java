package io.blip2stream.service.verticle;

import io.blip2stream.engine.ContinuousBatcher;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.TokenSink;
import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.lifecycle.TokenEvent;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.VerticleBase;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import io.blip2stream.service.lifecycle.RequestEvent;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The inference worker of one device: a worker verticle that owns the device's models. With continuous batching
 * (the default) a {@link ContinuousBatcher} runs the device on a thread of its own: requests join the running
 * decode batch between two steps and leave it when done, so a new request's first token never waits for the
 * requests already running. With static batching, a request waits at most {@code maxWaitMs} for others, a batch
 * holds at most {@code maxBatchSize}, and requests that arrive while a batch runs form the next one. Tokens of
 * requests that asked to stream go to the event bus as they come, in order, before their result.
 */
public final class InferenceWorkerVerticle extends VerticleBase {
    private static final Logger LOG = LoggerFactory.getLogger(InferenceWorkerVerticle.class);

    private static final io.vertx.core.eventbus.DeliveryOptions RELAY = new io.vertx.core.eventbus.DeliveryOptions().setLocalOnly(true);

    private final String device;
    private final Supplier<InferenceRunner> loader;
    private final int maxBatchSize;
    private final long maxWaitMs;
    private final long maxJoinWaitMs;
    private final ServiceMetrics metrics;
    private final boolean continuous;
    private final List<Message<InferenceJob>> queue = new ArrayList<>();
    private final Map<InferenceJob, Message<InferenceJob>> waiting = java.util.Collections.synchronizedMap(new java.util.IdentityHashMap<>());
    private InferenceRunner runner;
    private ContinuousBatcher batcher;
    private Context context;
    private Promise<Void> batcherStopped;
    private MessageConsumer<InferenceJob> consumer;
    private long timer = -1;

    public InferenceWorkerVerticle(String device, Supplier<InferenceRunner> loader, boolean continuous, int maxBatchSize,
                                   long maxWaitMs, long maxJoinWaitMs, ServiceMetrics metrics) {
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
                runner.generationModel() == null ? "none" : runner.generationModel().decodePath(),
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
        if (continuous) {
            batcherStopped = Promise.promise();
            batcher = new ContinuousBatcher(runner, device, maxBatchSize, maxWaitMs, maxJoinWaitMs, new BatcherEvents()).start();
            consumer = vertx.eventBus().localConsumer(Addresses.INFERENCE, this::submit);
        } else {
            consumer = vertx.eventBus().localConsumer(Addresses.INFERENCE, this::enqueue);
        }
        return consumer.completion();
    }

    private void submit(Message<InferenceJob> message) {
        metrics.queueDepth().incrementAndGet();
        waiting.put(message.body(), message);
        batcher.submit(message.body());
    }

    /**
     * The batcher's reports, made on its thread and handed to this verticle's context in order: a request's
     * tokens reach the event bus before its reply. Events are handed over once a pass (an admission or a decode
     * step: up to one token of every row) rather than once a token: each hand-over wakes threads that take the
     * CPU from the model's.
     */
    private final class BatcherEvents implements ContinuousBatcher.Listener {
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
            if (o.result() != null && o.result().tokenIds() != null) {
                metrics.tokens(o.result().tokenIds().length);
            }
            Message<InferenceJob> m = waiting.remove(o.job());
            List<Object> events = handOver(); // its tokens (and those before them) first
            context.runOnContext(v -> {
                relay(events);
                if (m != null) {
                    m.reply(o);
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
                batcherStopped.tryComplete();
            });
        }
    }

    private void enqueue(Message<InferenceJob> message) {
        queue.add(message);
        metrics.queueDepth().incrementAndGet();
        if (queue.size() >= maxBatchSize) {
            runBatches();
        } else if (timer < 0) {
            timer = vertx.setTimer(Math.max(1, maxWaitMs), t -> {
                timer = -1;
                runBatches();
            });
        }
    }

    private void runBatches() {
        if (timer >= 0) {
            vertx.cancelTimer(timer);
            timer = -1;
        }
        while (!queue.isEmpty()) {
            List<Message<InferenceJob>> batch = new ArrayList<>(queue.subList(0, Math.min(maxBatchSize, queue.size())));
            queue.subList(0, batch.size()).clear();
            metrics.queueDepth().addAndGet(-batch.size());
            metrics.batch(batch.size());
            List<InferenceJob> jobs = new ArrayList<>(batch.size());
            for (Message<InferenceJob> m : batch) {
                jobs.add(m.body());
                vertx.eventBus().send(Addresses.RELAY, RequestEvent.running(m.body().id()), RELAY);
            }
            List<InferenceRunner.Outcome> outcomes;
            try {
                outcomes = runner.run(jobs, new TokenSink() {
                    @Override
                    public void onToken(InferenceJob job, int index, int tokenId, String text) {
                        vertx.eventBus().send(Addresses.RELAY, new TokenEvent(job.id(), index, tokenId, text, job.stream()), RELAY);
                    }

                    @Override
                    public boolean isCancelled(InferenceJob job) {
                        return job.cancelled();
                    }
                });
            } catch (RuntimeException e) {
                LOG.error("batch of {} failed", jobs.size(), e);
                for (Message<InferenceJob> m : batch) {
                    m.fail(500, "inference failed: " + e);
                }
                continue;
            }
            for (int i = 0; i < batch.size(); i++) {
                InferenceRunner.Outcome o = outcomes.get(i);
                if (o.result() != null && o.result().tokenIds() != null) {
                    metrics.tokens(o.result().tokenIds().length);
                }
                batch.get(i).reply(o);
            }
        }
    }

    @Override
    public Future<?> stop() {
        if (timer >= 0) {
            vertx.cancelTimer(timer);
        }
        Future<Void> unregistered = consumer == null ? Future.succeededFuture() : consumer.unregister();
        if (batcher != null) {
            // the batcher finishes what was handed over (queued and running), then its thread ends
            return unregistered.compose(v -> {
                batcher.close();
                return batcherStopped.future();
            }).onComplete(v -> runner.close());
        }
        return unregistered.onComplete(v -> {
            if (!queue.isEmpty()) {
                runBatches(); // finish what was handed over
            }
            if (runner != null) {
                runner.close();
            }
        });
    }
}
