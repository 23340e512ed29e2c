package io.blip2stream.service.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The service's Prometheus metrics: requests by task and outcome, queue depth, batch sizes, latency per stage,
 * tokens generated, consumer lag; plus the JVM's. Thread-safe; one per process.
 */
public final class ServiceMetrics {
    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final AtomicLong queueDepth = new AtomicLong();
    private final AtomicLong inFlight = new AtomicLong();
    private final Map<String, AtomicLong> lag = new ConcurrentHashMap<>();
    private final DistributionSummary batchSize;
    private final Counter tokens;
    private final Map<String, Timer> stages = new ConcurrentHashMap<>();

    public ServiceMetrics() {
        new JvmMemoryMetrics().bindTo(registry);
        new JvmGcMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        Gauge.builder("blip2_queue_depth", queueDepth, AtomicLong::get)
                .description("requests waiting for an inference worker").register(registry);
        Gauge.builder("blip2_in_flight", inFlight, AtomicLong::get)
                .description("requests taken from Kafka and not yet answered").register(registry);
        batchSize = DistributionSummary.builder("blip2_batch_size").description("rows per decode step (continuous batching), requests per batch (static)")
                .serviceLevelObjectives(1, 2, 4, 8, 16, 32).register(registry);
        tokens = Counter.builder("blip2_tokens_generated").description("tokens generated").register(registry);
    }

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    /** Prometheus text exposition. */
    public String scrape() {
        return registry.scrape();
    }

    /** @param outcome ok, rejected (DLT for bad input) or failed */
    public void request(String task, String outcome) {
        Counter.builder("blip2_requests").tag("task", task == null ? "unknown" : task).tag("outcome", outcome)
                .description("requests by task and outcome").register(registry).increment();
    }

    public void stage(String stage, double ms) {
        stages.computeIfAbsent(stage, s -> Timer.builder("blip2_stage_latency").tag("stage", s)
                .description("latency of each stage of a request").publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofMinutes(10)).register(registry))
                .record(Duration.ofNanos((long) (ms * 1e6)));
    }

    public void batch(int size) {
        batchSize.record(size);
    }

    public void tokens(int n) {
        tokens.increment(n);
    }

    public AtomicLong queueDepth() {
        return queueDepth;
    }

    public AtomicLong inFlight() {
        return inFlight;
    }

    /** Sets the consumer lag of a partition ("topic-partition"). */
    public void lag(String partition, long value) {
        lag.computeIfAbsent(partition, p -> {
            AtomicLong a = new AtomicLong();
            Gauge.builder("blip2_consumer_lag", a, AtomicLong::get).tag("partition", p)
                    .description("records of the partition not yet committed").register(registry);
            return a;
        }).set(value);
    }
}
