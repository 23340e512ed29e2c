package io.blip2stream.service.verticle;

import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.TokenSink;
import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.TokenEvent;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import io.blip2stream.service.requests.RequestEvent;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The inference worker of one device: a worker verticle that owns the device's models and runs requests in
 * batches. A request waits at most {@code maxWaitMs} for others to join it, and a batch holds at most
 * {@code maxBatchSize}; requests that arrive while a batch runs form the next one. Tokens of requests that asked
 * to stream are published on the event bus as they come.
 */
public final class InferenceWorkerVerticle extends VerticleBase {
    private static final Logger LOG = LoggerFactory.getLogger(InferenceWorkerVerticle.class);

    private static final io.vertx.core.eventbus.DeliveryOptions RELAY = new io.vertx.core.eventbus.DeliveryOptions().setLocalOnly(true);

    private final String device;
    private final Supplier<InferenceRunner> loader;
    private final int maxBatchSize;
    private final long maxWaitMs;
    private final ServiceMetrics metrics;
    private final Set<String> cancelled;
    private final List<Message<InferenceJob>> queue = new ArrayList<>();
    private InferenceRunner runner;
    private MessageConsumer<InferenceJob> consumer;
    private long timer = -1;

    /** @param cancelled ids of requests their owner cancelled (shared, thread-safe): their generation stops */
    public InferenceWorkerVerticle(String device, Supplier<InferenceRunner> loader, int maxBatchSize, long maxWaitMs,
                                   ServiceMetrics metrics, Set<String> cancelled) {
        this.cancelled = cancelled;
        this.device = device;
        this.loader = loader;
        this.maxBatchSize = maxBatchSize;
        this.maxWaitMs = maxWaitMs;
        this.metrics = metrics;
    }

    public InferenceRunner runner() {
        return runner;
    }

    @Override
    public Future<?> start() {
        long t0 = System.nanoTime();
        runner = loader.get(); // a worker thread: loading the models may block
        LOG.info("inference worker on {} ready in {} ms: generation {}, retrieval {}", device, (System.nanoTime() - t0) / 1_000_000,
                runner.generationModel() == null ? "none" : runner.generationModel().dir(),
                runner.retrievalModel() == null ? "none" : runner.retrievalModel().dir());
        consumer = vertx.eventBus().localConsumer(Addresses.INFERENCE, this::enqueue);
        return consumer.completion();
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
                        return cancelled.contains(job.id());
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
