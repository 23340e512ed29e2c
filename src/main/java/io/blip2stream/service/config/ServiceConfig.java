package io.blip2stream.service.config;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.cluster.ClusterSettings;

import java.net.InetAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The service's settings, typed, from {@link ConfigLoader}. Topics and addresses are named here and nowhere else. */
public record ServiceConfig(
        String nodeId,
        String modelPath,
        String retrievalModelPath,
        String engine,
        String dtype,
        List<String> devices,
        Path dataDir,
        String httpHost,
        int httpPort,
        Http http,
        Requests requests,
        ClusterSettings cluster,
        Cache cache,
        Kafka kafka,
        Inference inference,
        Limits limits,
        Images images,
        long drainTimeoutMs) {

    /** The HTTP and WebSocket limits. */
    public record Http(List<String> allowedOrigins, List<String> authTokens, int maxRequestsPerConnection, int maxInFlight,
                       int maxFrameBytes, int maxMessageBytes, int idleTimeoutS, int writeQueueMaxBytes, int sendBufferBytes,
                       long followTimeoutMs, int maxSocketsPerToken, List<String> allowedHosts, long headerTimeoutMs,
                       long bodyTimeoutMs, String tlsCertFile, String tlsKeyFile) {

        /** Whether HTTP and WebSocket are served over TLS (a PEM certificate and key configured). */
        public boolean tls() {
            return !tlsCertFile.isBlank();
        }
    }

    /** The cluster-wide visual-prompt cache. */
    public record Cache(boolean enabled, int maxEntriesPerNode, int ttlS) {}

    /** How long finished requests are remembered. */
    public record Requests(long retentionMs, int maxEntries) {}

    public record Kafka(String bootstrapServers, int embeddedPort, int embeddedControllerPort, String groupId,
                        int partitions, short replicationFactor, Topics topics, int maxInFlightPerPartition,
                        int maxInFlight, int maxPollRecords, long commitIntervalMs, boolean exactlyOnce,
                        Map<String, String> consumer, Map<String, String> producer, int poisonAfterCrashes,
                        CloudEvents cloudEvents) {

        /** Whether to start the in-process broker (no bootstrap servers configured). */
        public boolean embedded() {
            return bootstrapServers == null || bootstrapServers.isBlank();
        }

        /**
         * An admin client's settings: {@code bootstrap}, {@code extra}, and how to reach a secured broker, which is the
         * consumer's ({@code security.*}, {@code sasl.*}, {@code ssl.*} of {@code kafka.consumer}): every admin client
         * (topic creation, the readiness probe, the ingress's offsets) connects as the consumer does.
         */
        public Map<String, String> admin(String bootstrap, Map<String, String> extra) {
            Map<String, String> out = new LinkedHashMap<>();
            consumer.forEach((key, v) -> {
                if (key.startsWith("security.") || key.startsWith("sasl.") || key.startsWith("ssl.")) {
                    out.put(key, v);
                }
            });
            out.putAll(extra);
            out.put("bootstrap.servers", bootstrap);
            return out;
        }
    }

    public record Topics(String requests, String captions, String answers, String matches, String embeddings,
                         String tokens, String deadLetter) {
        public List<String> all() {
            return List.of(requests, captions, answers, matches, embeddings, tokens, deadLetter);
        }
    }

    public record Inference(boolean continuousBatching, int maxBatchSize, long maxBatchWaitMs, long maxJoinWaitMs, int defaultMaxNewTokens, int maxNewTokensCap,
                            int maxPromptTokens, int maxTexts, long requestTimeoutMs, long defaultDeadlineMs, long stepDelayMs,
                            int warmupRequests) {}

    public record Limits(long maxImageBytes, long maxImagePixels, long maxRecordBytes) {}

    /**
     * CloudEvents on Kafka: requests that are events are always read; outputs carry {@code ce_*} headers (binary
     * mode) when {@code binaryOutputs}, with {@code source} as their {@code ce_source}.
     */
    public record CloudEvents(boolean binaryOutputs, java.net.URI source) {
        static CloudEvents of(JsonNode n) {
            String outputs = n.get("outputs").asText();
            if (!outputs.equals("none") && !outputs.equals("binary")) {
                throw new IllegalArgumentException("kafka.cloudevents.outputs (BLIP2_KAFKA_CLOUDEVENTS_OUTPUTS) must be none or binary, not '"
                        + outputs + "'");
            }
            String source = n.get("source").asText();
            try {
                java.net.URI uri = new java.net.URI(source);
                if (source.isBlank()) {
                    throw new java.net.URISyntaxException(source, "empty");
                }
                return new CloudEvents(outputs.equals("binary"), uri);
            } catch (java.net.URISyntaxException e) {
                throw new IllegalArgumentException("kafka.cloudevents.source must be a URI reference (such as /blip2-stream or "
                        + "urn:example:captioner), not '" + source + "'");
            }
        }
    }

    /** Images by reference: where they may be fetched from, and how (see {@code images} in application.yaml). */
    public record Images(List<String> allowedHosts, boolean allowHttp, boolean allowPrivateAddresses, long fetchTimeoutMs,
                         int maxRedirects, String fileRoot) {}

    static ServiceConfig from(JsonNode n) {
        JsonNode k = n.get("kafka");
        JsonNode t = k.get("topics");
        JsonNode i = n.get("inference");
        JsonNode l = n.get("limits");
        List<String> devices = new ArrayList<>();
        n.get("model").get("devices").forEach(d -> devices.add(d.asText().trim()));
        String node = n.get("node").get("id").asText();
        if (node.isBlank()) {
            node = hostName();
        }
        ServiceConfig c = new ServiceConfig(
                node,
                n.get("model").get("path").asText(),
                n.get("model").get("retrieval_path").asText(),
                n.get("model").get("engine").asText(),
                n.get("model").get("dtype").asText(),
                List.copyOf(devices),
                Path.of(n.get("data_dir").asText()),
                n.get("http").get("host").asText(),
                n.get("http").get("port").asInt(),
                new Http(list(n.get("http").get("allowed_origins")), list(n.get("http").get("auth_tokens")),
                        n.get("http").get("max_requests_per_connection").asInt(), n.get("http").get("max_in_flight").asInt(),
                        n.get("http").get("max_frame_bytes").asInt(), n.get("http").get("max_message_bytes").asInt(),
                        n.get("http").get("idle_timeout_s").asInt(), n.get("http").get("write_queue_max_bytes").asInt(),
                        n.get("http").get("send_buffer_bytes").asInt(), n.get("http").get("follow_timeout_ms").asLong(),
                        n.get("http").get("max_sockets_per_token").asInt(), list(n.get("http").get("allowed_hosts")),
                        n.get("http").get("header_timeout_ms").asLong(), n.get("http").get("body_timeout_ms").asLong(),
                        n.get("http").get("tls_cert_file").asText(), n.get("http").get("tls_key_file").asText()),
                new Requests(n.get("requests").get("retention_ms").asLong(), n.get("requests").get("max_entries").asInt()),
                cluster(n.get("cluster"), n.get("requests"), n.get("cache")),
                new Cache(n.get("cache").get("enabled").asBoolean(), n.get("cache").get("max_entries_per_node").asInt(),
                        n.get("cache").get("ttl_s").asInt()),
                new Kafka(k.get("bootstrap_servers").asText(), k.get("embedded").get("port").asInt(),
                        k.get("embedded").get("controller_port").asInt(), k.get("group_id").asText(),
                        k.get("partitions").asInt(), (short) k.get("replication_factor").asInt(),
                        new Topics(t.get("requests").asText(), t.get("captions").asText(), t.get("answers").asText(),
                                t.get("matches").asText(), t.get("embeddings").asText(), t.get("tokens").asText(),
                                t.get("dead_letter").asText()),
                        k.get("max_in_flight_per_partition").asInt(), k.get("max_in_flight").asInt(),
                        k.get("max_poll_records").asInt(), k.get("commit_interval_ms").asLong(),
                        k.get("exactly_once").asBoolean(), strings("kafka.consumer", k.get("consumer")),
                        strings("kafka.producer", k.get("producer")),
                        k.get("poison_after_crashes").asInt(), CloudEvents.of(k.get("cloudevents"))),
                new Inference(batching(i.get("batching").asText()), i.get("max_batch_size").asInt(), i.get("max_batch_wait_ms").asLong(),
                        i.get("max_join_wait_ms").asLong(),
                        i.get("default_max_new_tokens").asInt(), i.get("max_new_tokens_cap").asInt(),
                        i.get("max_prompt_tokens").asInt(), i.get("max_texts").asInt(), i.get("request_timeout_ms").asLong(),
                        i.get("default_deadline_ms").asLong(), i.get("step_delay_ms").asLong(),
                        i.get("warmup_requests").asInt()),
                new Limits(l.get("max_image_bytes").asLong(), l.get("max_image_pixels").asLong(), l.get("max_record_bytes").asLong()),
                new Images(list(n.get("images").get("allowed_hosts")), n.get("images").get("allow_http").asBoolean(),
                        n.get("images").get("allow_private_addresses").asBoolean(), n.get("images").get("fetch_timeout_ms").asLong(),
                        n.get("images").get("max_redirects").asInt(), n.get("images").get("file_root").asText()),
                n.get("shutdown").get("drain_timeout_ms").asLong());
        c.validate();
        return c;
    }

    private static boolean batching(String mode) {
        return switch (mode) {
            case "continuous" -> true;
            case "static" -> false;
            default -> throw new IllegalArgumentException("inference.batching must be continuous or static, not '" + mode + "'");
        };
    }

    private static ClusterSettings cluster(JsonNode c, JsonNode requests, JsonNode cache) {
        return new ClusterSettings(c.get("name").asText(), c.get("host").asText(), c.get("port").asInt(), list(c.get("members")),
                c.get("kubernetes").asBoolean(), c.get("service_name").asText(), c.get("namespace").asText(),
                c.get("event_bus_port").asInt(), c.get("failure_detection_s").asInt(), c.get("state_backups").asInt(),
                c.get("merge_delay_s").asInt(), c.get("key_file").asText(), c.get("insecure").asBoolean(),
                c.get("public_host").asText(), c.get("tls_dir").asText(),
                new ClusterSettings.Maps(requests.get("retention_ms").asLong(), cache.get("ttl_s").asInt(),
                        cache.get("max_entries_per_node").asInt()));
    }

    private static List<String> list(JsonNode n) {
        List<String> out = new ArrayList<>();
        if (n != null) {
            n.forEach(e -> {
                if (!e.asText().isBlank()) {
                    out.add(e.asText().trim());
                }
            });
        }
        return List.copyOf(out);
    }

    /** A map of client properties; anything else (a YAML alias, which the loader does not follow, a list) refused. */
    private static Map<String, String> strings(String name, JsonNode n) {
        Map<String, String> m = new LinkedHashMap<>();
        if (n == null || n.isNull()) {
            return m;
        }
        if (!n.isObject()) {
            throw new IllegalArgumentException(name + " must be a map of client properties (YAML anchors and aliases are not "
                    + "followed: write the properties out), not " + n.getNodeType().name().toLowerCase(java.util.Locale.ROOT));
        }
        n.fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue().asText()));
        return m;
    }

    private void validate() {
        check(httpPort >= 0 && httpPort < 65536, "http.port must be a port number");
        check(!devices.isEmpty(), "model.devices must name at least one device");
        check(io.blip2stream.model.weights.Precision.isSetting(dtype), "model.dtype (BLIP2_DTYPE) must be float32, bfloat16, int8 or auto, not '" + dtype + "'");
        for (String d : devices) {
            check(d.equals("cpu") || d.matches("gpu:\\d+"), "model.devices: '" + d + "' is not cpu or gpu:N");
        }
        check(kafka.partitions() > 0, "kafka.partitions must be positive");
        check(kafka.maxInFlightPerPartition() > 0 && kafka.maxInFlight() > 0, "in-flight limits must be positive");
        // exactly-once commits which records above the offset are answered in the offset's metadata (4 KB at most on
        // brokers' defaults): the records a partition holds taken, of this owner and of the last
        check(!kafka.exactlyOnce() || kafka.maxInFlightPerPartition() + kafka.maxPollRecords() <= 90,
                "with kafka.exactly_once, max_in_flight_per_partition + max_poll_records must be at most 90");
        check(inference.maxBatchSize() > 0, "inference.max_batch_size must be positive");
        check(images.fetchTimeoutMs() > 0, "images.fetch_timeout_ms must be positive");
        check(images.maxRedirects() >= 0 && images.maxRedirects() <= 20, "images.max_redirects must be between 0 and 20");
        check(images.fileRoot().isBlank() || java.nio.file.Files.isDirectory(Path.of(images.fileRoot())),
                "images.file_root (BLIP2_IMAGES_FILE_ROOT) must be a folder that exists, not '" + images.fileRoot() + "'");
        check(kafka.poisonAfterCrashes() >= 1, "kafka.poison_after_crashes must be at least 1");
        check(http.headerTimeoutMs() > 0 && http.bodyTimeoutMs() > 0, "http.header_timeout_ms and body_timeout_ms must be positive");
        check(!cluster.host().isBlank() && !cluster.host().equals("0.0.0.0") && !cluster.host().contains(":"),
                "cluster.host must be this node's IPv4 address or host name (not 0.0.0.0: Hazelcast and the event bus listen "
                + "on one address and announce it; IPv6 is not supported yet), not '" + cluster.host() + "'");
        check(http.tlsCertFile().isBlank() == http.tlsKeyFile().isBlank(), "http.tls_cert_file and http.tls_key_file go together: "
                + "set both (PEM files) for HTTPS, or neither");
        for (String f : List.of(http.tlsCertFile(), http.tlsKeyFile())) {
            check(f.isBlank() || java.nio.file.Files.isReadable(java.nio.file.Path.of(f)), "http.tls_*_file: cannot read " + f);
        }
        check(inference.defaultMaxNewTokens() > 0 && inference.defaultMaxNewTokens() <= inference.maxNewTokensCap(),
                "inference.default_max_new_tokens must be between 1 and max_new_tokens_cap");
        check(inference.defaultDeadlineMs() >= 0 && inference.defaultDeadlineMs() <= inference.requestTimeoutMs(),
                "inference.default_deadline_ms must be between 0 (none) and request_timeout_ms");
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    private static String hostName() {
        String h = System.getenv("HOSTNAME");
        if (h != null && !h.isBlank()) {
            return h;
        }
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (Exception e) {
            return "blip2-node";
        }
    }

    /** The Kafka bootstrap servers the clients use (the in-process broker's listener when embedded). */
    public String bootstrapServers() {
        return kafka.embedded() ? "localhost:" + kafka.embeddedPort() : kafka.bootstrapServers();
    }
}
