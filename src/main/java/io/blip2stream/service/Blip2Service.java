package io.blip2stream.service;

import io.blip2stream.cluster.ClusterBootstrap;
import io.blip2stream.cluster.ClusterCipher;
import io.blip2stream.cluster.HazelcastVisualPromptCache;
import io.blip2stream.cluster.RequestStore;
import io.blip2stream.engine.Engines;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.ModelLocations;
import io.blip2stream.engine.RequestTexts;
import io.blip2stream.engine.VisualPromptCache;
import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.http.HttpVerticle;
import io.blip2stream.service.kafka.EmbeddedKafka;
import io.blip2stream.service.kafka.KafkaIngressVerticle;
import io.blip2stream.service.kafka.ResultPublisherVerticle;
import io.blip2stream.service.kafka.Topics;
import io.blip2stream.service.metrics.ServiceMetrics;
import io.blip2stream.service.protocol.RequestDecoder;
import io.blip2stream.service.protocol.ServiceInfo;
import io.blip2stream.service.verticle.InferenceWorkerVerticle;
import io.vertx.core.DeploymentOptions;
import io.vertx.core.Future;
import io.vertx.core.ThreadingModel;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The streaming service: starts (or connects to) Kafka, creates its topics, loads the models on each configured
 * device and deploys the verticles: result publisher, one inference worker per device, HTTP, and Kafka ingress
 * last, so nothing is taken before it can be answered. {@link #stop()} undoes it in the reverse order, draining
 * in-flight work first.
 */
public final class Blip2Service {
    private static final Logger LOG = LoggerFactory.getLogger(Blip2Service.class);
    static final String DEFAULT_MODEL = ModelLocations.DEFAULT_GENERATION;
    static final String DEFAULT_RETRIEVAL_MODEL = ModelLocations.DEFAULT_RETRIEVAL;

    private final ServiceConfig config;
    private final VertxOptions vertxOptions;
    private final ServiceMetrics metrics = new ServiceMetrics();
    private EmbeddedKafka broker;
    private Vertx vertx;
    private String bootstrapServers;
    private final List<String> workerDeployments = new ArrayList<>();
    private final List<InferenceWorkerVerticle> workers = new ArrayList<>();
    private String publisherDeployment;
    private String ingressDeployment;
    private String httpDeployment;
    private HttpVerticle http;
    private Path modelPath;
    private Path retrievalPath;
    private io.vertx.spi.cluster.hazelcast.HazelcastClusterManager clusterManager;
    private RequestStore store;
    private io.blip2stream.cluster.RecordsInFlight recordsInFlight;
    private long clusterFormationMs;
    /** Bounds and tokenizes requests' texts (worker threads), for every ingress. */
    private RequestTexts texts;
    private RequestDecoder decoder;
    /** the Kafka ingress deployed now (null while none) */
    private volatile KafkaIngressVerticle ingress;

    /** How long start() waits for the first partition assignment before it says ready anyway. */
    private static final long READY_WAIT_S = 60;
    /**
     * Set as {@link #stop} is called, before it waits for {@link #start} to finish: a node told to stop while it
     * starts (SIGTERM from Kubernetes during a slow start) goes no further, so it never joins the consumer group only
     * to leave it again (each join and leave moves partitions, and stalls them, on every other node).
     */
    private volatile boolean stopRequested;
    private volatile boolean ingressEverStarted;

    public Blip2Service(ServiceConfig config) {
        this(config, new VertxOptions());
    }

    public Blip2Service(ServiceConfig config, VertxOptions vertxOptions) {
        this.config = config;
        this.vertxOptions = vertxOptions;
    }

    public synchronized Blip2Service start() throws Exception {
        if (stopping("before it began (a service once stopped is not started again)")) {
            return this;
        }
        // the cluster's key and certificates first: a node that may not start says so before loading anything
        ClusterCipher cipher = ClusterBootstrap.cipher(config.cluster());
        java.util.Optional<io.blip2stream.cluster.ClusterTls> tls = ClusterBootstrap.tls(config.cluster());
        tls.ifPresent(t -> LOG.info("the event bus speaks mutual TLS as {}", t.describe()));
        resolveModels();
        texts = RequestTexts.load(modelPath, retrievalPath, config.inference().maxPromptTokens());
        decoder = new RequestDecoder(config.inference(), config.limits(), texts);
        if (config.kafka().embedded()) {
            Path dir = config.dataDir().resolve("kafka");
            LOG.info("no Kafka bootstrap servers configured (BLIP2_KAFKA_BOOTSTRAP_SERVERS): starting a single-node broker in-process");
            broker = new EmbeddedKafka(dir, config.kafka().embeddedPort(), config.kafka().embeddedControllerPort()).start();
            bootstrapServers = broker.bootstrapServers();
        } else {
            bootstrapServers = config.kafka().bootstrapServers();
        }
        Topics.ensure(bootstrapServers, config.kafka());
        io.blip2stream.cluster.RequestStateMergePolicy.use(cipher); // before joining: a merge may come at once
        LOG.info("the cluster's state is sealed with {}", cipher.origin());
        long c0 = System.nanoTime();
        clusterManager = new io.vertx.spi.cluster.hazelcast.HazelcastClusterManager(ClusterBootstrap.hazelcastConfig(config.cluster()));
        vertx = await(ClusterBootstrap.start(config.cluster(), tls, vertxOptions, clusterManager));
        clusterFormationMs = (System.nanoTime() - c0) / 1_000_000;
        var hz = clusterManager.getHazelcastInstance();
        LOG.info("joined cluster '{}' in {} ms: {} member(s) {}", config.cluster().name(), clusterFormationMs,
                hz.getCluster().getMembers().size(), hz.getCluster().getMembers());
        String me = hz.getCluster().getLocalMember().getUuid().toString();
        store = new RequestStore(hz.getMap(ClusterBootstrap.REQUESTS_MAP), cipher, config.requests().retentionMs(), me,
                uuid -> hz.getCluster().getMembers().stream().anyMatch(m -> m.getUuid().toString().equals(uuid)));
        recordsInFlight = new io.blip2stream.cluster.RecordsInFlight(hz.getMap(ClusterBootstrap.RECORDS_IN_FLIGHT_MAP), cipher, me,
                uuid -> hz.getCluster().getMembers().stream().anyMatch(m -> m.getUuid().toString().equals(uuid)));
        VisualPromptCache cache = config.cache().enabled()
                ? new HazelcastVisualPromptCache(hz.getMap(ClusterBootstrap.VISUAL_PROMPTS_MAP), cipher) : VisualPromptCache.NONE;
        io.micrometer.core.instrument.FunctionCounter.builder("blip2_cluster_rejected_values", cipher, ClusterCipher::rejected)
                .description("values in the cluster's maps that did not open under the cluster key (foreign, damaged): treated as absent")
                .register(metrics.registry());
        tls.ifPresent(t -> {
            io.micrometer.core.instrument.Gauge.builder("blip2_cluster_certificate_expiry_seconds", t, x -> x.remaining().toSeconds())
                    .description("seconds until this node's event-bus certificate (cluster.tls_dir) expires").register(metrics.registry());
            if (t.remaining().toDays() < 30) {
                LOG.warn("this node's event-bus certificate expires in {} days: sign a new one with the same CA "
                        + "(blip2-stream certs --out DIR --name NAME, which renews certificates with less than 30 days left)", t.remaining().toDays());
            }
        });
        Addresses.registerCodecs(vertx);
        await(vertx.deployVerticle(new io.blip2stream.service.verticle.EventRelayVerticle()));
        publisherDeployment = await(vertx.deployVerticle(
                new ResultPublisherVerticle(bootstrapServers, config.kafka().producer(), config.kafka().topics().tokens(),
                        config.kafka().cloudEvents())));
        Engines.Kind engine = Engines.Kind.parse(config.engine());
        InferenceRunner.Limits limits = new InferenceRunner.Limits(config.inference().maxPromptTokens(),
                config.limits().maxImagePixels(), config.inference().stepDelayMs());
        if (stopping("before loading the models")) {
            return this;
        }
        for (String device : config.devices()) {
            InferenceWorkerVerticle w = new InferenceWorkerVerticle(device, config.nodeId(), () -> {
                try {
                    return InferenceRunner.load(modelPath, retrievalPath, engine, config.dtype(), device, limits, cache);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }, config.inference().continuousBatching(), config.inference().maxBatchSize(), config.inference().maxBatchWaitMs(),
                    config.inference().maxJoinWaitMs(),
                    metrics);
            workers.add(w);
            workerDeployments.add(await(vertx.deployVerticle(w, new DeploymentOptions().setThreadingModel(ThreadingModel.WORKER)
                    .setWorkerPoolName("blip2-inference-" + device).setWorkerPoolSize(1)
                    .setMaxWorkerExecuteTime(Long.MAX_VALUE))));
        }
        warmUp();
        if (stopping("before HTTP and Kafka open")) {
            return this;
        }
        http = new HttpVerticle(config, bootstrapServers, metrics, () -> !workers.isEmpty(),
                () -> ingress != null && ingress.firstAssignmentReady().isComplete(), decoder, store,
                ServiceInfo.of(config, texts, modelPath, retrievalPath, workers.isEmpty() ? null : workers.get(0).runner()));
        httpDeployment = await(vertx.deployVerticle(http));
        if (stopping("before joining the Kafka consumer group")) {
            return this;
        }
        ingress = new KafkaIngressVerticle(config, bootstrapServers, metrics, decoder, store, recordsInFlight, this::clusterSize);
        ingressEverStarted = true;
        ingressDeployment = await(vertx.deployVerticle(ingress));
        // ready once in the consumer group with its partitions open, so that what is sent after "ready" is taken at once
        java.util.concurrent.CompletableFuture<Void> assigned = ingress.firstAssignmentReady().toCompletionStage().toCompletableFuture();
        long readyBy = System.nanoTime() + TimeUnit.SECONDS.toNanos(READY_WAIT_S);
        while (!assigned.isDone() && !stopRequested && System.nanoTime() < readyBy) {
            try {
                assigned.get(100, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                // still waiting: look at stopRequested again
            }
        }
        if (stopping("before its first partitions were open")) {
            return this;
        }
        if (!assigned.isDone()) {
            LOG.warn("no partition assignment from the Kafka consumer group within {} s; going on (Kafka may be down)", READY_WAIT_S);
        }
        printBanner();
        return this;
    }

    /** Whether a stop was asked for while starting: then start() returns where it is, and stop() undoes what it did. */
    private boolean stopping(String where) {
        if (stopRequested) {
            LOG.info("asked to stop while starting: stopping {}", where);
        }
        return stopRequested;
    }

    /**
     * Before HTTP and Kafka open, rounds of captions of a synthetic image: 1 at a time, then 2 together, ... up to
     * {@code inference.warmup_requests} (at most the batch size) together, on every worker. An engine pays a one-time
     * setup for each shape it meets (TensorFlow's oneDNN creates and compiles its kernels per shape: 0.2 to 3.5 s
     * per batch size for the bench's small model on a 2-core machine, against 0.4 to 2.4 s for the pass itself), so
     * without this the first real requests of each batch size would pay it. Its failure is logged, not fatal.
     */
    private void warmUp() {
        int n = Math.min(config.inference().warmupRequests(), config.inference().maxBatchSize());
        if (n <= 0) {
            return;
        }
        long t0 = System.nanoTime();
        int sent = 0;
        try {
            java.awt.image.BufferedImage img = new java.awt.image.BufferedImage(64, 64, java.awt.image.BufferedImage.TYPE_INT_RGB);
            for (int y = 0; y < 64; y++) {
                for (int x = 0; x < 64; x++) {
                    img.setRGB(x, y, x * 4 << 16 | y * 4 << 8 | (x + y) * 2);
                }
            }
            java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
            javax.imageio.ImageIO.write(img, "png", png);
            String b64 = java.util.Base64.getEncoder().encodeToString(png.toByteArray());
            for (int together = 1; together <= n && !stopRequested; together++) {
                List<io.blip2stream.engine.InferenceJob> jobs = new ArrayList<>();
                for (int i = 0; i < together * Math.max(1, workers.size()); i++, sent++) {
                    String id = "warmup-" + sent;
                    String json = "{\"id\":\"" + id + "\",\"task\":\"caption\",\"image\":\"" + b64
                            + "\",\"params\":{\"max_new_tokens\":4,\"min_new_tokens\":4}}";
                    jobs.add(decoder.validate(decoder.fromJson(json.getBytes(java.nio.charset.StandardCharsets.UTF_8), null),
                            System.nanoTime()));
                }
                // decoded first, then sent back to back: a round reaches the batcher as one batch
                List<Future<Object>> runs = new ArrayList<>();
                for (var job : jobs) {
                    runs.add(vertx.eventBus().request(Addresses.INFERENCE, job, Addresses.local(300_000)).map(m -> m.body()));
                }
                await(Future.all(runs));
            }
            LOG.info("warmed up with {} captions, 1 to {} together, in {} ms", sent, n, (System.nanoTime() - t0) / 1_000_000);
        } catch (Exception e) {
            LOG.warn("warm-up failed after {} captions (going on): {}", sent, e.toString());
        }
    }

    /** The model folders: configured, or the ones in models/ (next to the working folder or to the jar). */
    private void resolveModels() {
        modelPath = config.modelPath().isBlank() ? findDefault(DEFAULT_MODEL) : Path.of(config.modelPath());
        if (!Files.isDirectory(modelPath)) {
            throw new IllegalArgumentException("model folder " + modelPath + " does not exist (BLIP2_MODEL)");
        }
        if (!config.retrievalModelPath().isBlank()) {
            retrievalPath = Path.of(config.retrievalModelPath());
            if (!Files.isDirectory(retrievalPath)) {
                throw new IllegalArgumentException("retrieval model folder " + retrievalPath + " does not exist (BLIP2_RETRIEVAL_MODEL)");
            }
        } else {
            Path d = findDefault(DEFAULT_RETRIEVAL_MODEL);
            retrievalPath = Files.isDirectory(d) ? d : null;
        }
    }

    static Path findDefault(String relative) {
        return ModelLocations.find(relative);
    }

    private void printBanner() {
        var t = config.kafka().topics();
        StringBuilder b = new StringBuilder();
        b.append("\nblip2-stream is up on node ").append(config.nodeId()).append('\n');
        b.append("  Kafka:    ").append(bootstrapServers).append(broker != null ? " (in-process broker, data in "
                + broker.dir().toAbsolutePath() + ")" : "").append('\n');
        b.append("  input:    ").append(t.requests()).append("   dead letters: ").append(t.deadLetter()).append('\n');
        b.append("  outputs:  ").append(t.captions()).append(", ").append(t.answers()).append(", ").append(t.matches())
                .append(", ").append(t.embeddings()).append("   tokens: ").append(t.tokens()).append('\n');
        var members = clusterManager.getHazelcastInstance().getCluster().getMembers();
        b.append("  cluster:  '").append(config.cluster().name()).append("', ").append(members.size()).append(" member(s) ")
                .append(members.stream().map(m -> m.getAddress().toString()).toList()).append(", formed in ")
                .append(clusterFormationMs).append(" ms\n");
        b.append("  HTTP:     http://").append(config.httpHost()).append(':').append(httpPort())
                .append("  (the page at /, WebSocket /v1/stream, POST /v1/caption, POST /v1/ask, GET /v1/requests/{id},\n")
                .append("             OpenAI: /v1/chat/completions, /v1/embeddings, /v1/models; /v1/info, /v1/schemas,\n")
                .append("             /health/live, /health/ready, /metrics)\n");
        b.append("  models:   ").append(modelPath.toAbsolutePath()).append(retrievalPath == null ? "" : ", " + retrievalPath.toAbsolutePath())
                .append(" on ").append(config.engine()).append(' ').append(config.devices()).append(", dtype ")
                .append(dtypes()).append('\n');
        b.append("  tasks:    ").append(String.join(", ", tasks())).append('\n');
        b.append("  try it:\n");
        b.append("    echo '{\"id\":\"req-1\",\"task\":\"caption\",\"image\":\"'$(base64 -w0 photo.png)'\"}' \\\n")
                .append("      | kcat -P -b ").append(bootstrapServers).append(" -t ").append(t.requests()).append(" -k req-1\n");
        b.append("    kcat -P -b ").append(bootstrapServers).append(" -t ").append(t.requests())
                .append(" -k req-2 -H blip2-task=vqa -H 'blip2-question=what is in the picture?' photo.png\n");
        b.append("    kcat -C -b ").append(bootstrapServers).append(" -t ").append(t.captions()).append(" -f '%k %s\\n'\n");
        b.append("  or without kcat: java -jar target/blip2-stream.jar produce --task caption --image photo.png\n");
        System.out.println(b);
        LOG.info("ready");
    }

    public String bootstrapServers() {
        return bootstrapServers;
    }

    public int httpPort() {
        return http == null ? -1 : http.actualPort();
    }

    public Vertx vertx() {
        return vertx;
    }

    public long clusterFormationMs() {
        return clusterFormationMs;
    }

    public RequestStore store() {
        return store;
    }

    /** This node's Hazelcast member (tests look at what it holds and where it listens). */
    public com.hazelcast.core.HazelcastInstance hazelcast() {
        return clusterManager.getHazelcastInstance();
    }

    /** The members of the cluster this node is in. */
    public int clusterSize() {
        return clusterManager.getHazelcastInstance().getCluster().getMembers().size();
    }

    public ServiceMetrics metrics() {
        return metrics;
    }

    public ServiceConfig config() {
        return config;
    }

    /** Whether the Kafka ingress was ever deployed (started its consumer) in this service's life. */
    public boolean kafkaIngressStarted() {
        return ingressEverStarted;
    }

    /** Undeploys the Kafka ingress only (it drains and commits): what a restart of the consumer does. */
    public synchronized void stopIngress() throws Exception {
        if (ingressDeployment != null) {
            ingress = null;
            await(vertx.undeploy(ingressDeployment));
            ingressDeployment = null;
        }
    }

    public synchronized void startIngress() throws Exception {
        if (ingressDeployment == null) {
            ingress = new KafkaIngressVerticle(config, bootstrapServers, metrics, decoder, store, recordsInFlight, this::clusterSize);
            ingressEverStarted = true;
            ingressDeployment = await(vertx.deployVerticle(ingress));
        }
    }

    /**
     * Graceful: stop consuming and drain, then HTTP, the workers, the publisher (flushed), Vert.x and the broker. Called
     * while {@link #start} runs, it makes start return at its next step, then stops what it started.
     */
    public void stop() {
        stopRequested = true;
        synchronized (this) {
            stopStarted();
        }
    }

    private void stopStarted() {
        try {
            if (vertx != null) {
                stopIngress();
                if (httpDeployment != null) {
                    await(vertx.undeploy(httpDeployment));
                }
                for (String d : workerDeployments) {
                    await(vertx.undeploy(d));
                }
                if (publisherDeployment != null) {
                    await(vertx.undeploy(publisherDeployment));
                }
                await(vertx.close());
            }
        } catch (Exception e) {
            LOG.warn("while stopping: {}", e.toString());
        } finally {
            vertx = null;
            if (broker != null) {
                broker.close();
                broker = null;
            }
            if (texts != null) {
                texts.close();
                texts = null;
            }
        }
        LOG.info("stopped");
    }

    private <T> T await(Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(config.drainTimeoutMs() + 600_000, TimeUnit.MILLISECONDS);
    }

    /** The tasks the loaded checkpoints serve: caption and vqa with a generation model, match and embed with a retrieval one. */
    private List<String> tasks() {
        List<String> out = new ArrayList<>();
        if (texts.generationModel() != null) {
            out.addAll(List.of("caption", "vqa"));
        }
        if (texts.retrievalModel() != null) {
            out.addAll(List.of("match", "embed"));
        }
        return out;
    }

    /** The precision each loaded model's weights are kept in (model.dtype, auto resolved), as the banner shows it. */
    private String dtypes() {
        java.util.Set<String> d = new java.util.LinkedHashSet<>();
        for (InferenceWorkerVerticle w : workers) {
            if (w.runner() == null) {
                continue;
            }
            for (io.blip2stream.model.Blip2Model m : new io.blip2stream.model.Blip2Model[] {w.runner().generationModel(), w.runner().retrievalModel()}) {
                if (m != null) {
                    d.add(m.precision().id());
                }
            }
        }
        return d.isEmpty() ? config.dtype() : String.join("/", d);
    }
}
