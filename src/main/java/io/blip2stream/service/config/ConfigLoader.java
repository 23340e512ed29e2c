package io.blip2stream.service.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The service's configuration in three layers, each overriding the one before: {@code conf/application.yaml}
 * (the defaults, inside the jar), a YAML file given with {@code --config}, and environment variables. Every
 * variable is named here, once, beside the key it sets.
 */
public final class ConfigLoader {
    static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    /** Environment variable to configuration key (a dotted path). */
    public static final Map<String, String> ENVIRONMENT = new LinkedHashMap<>();

    static {
        ENVIRONMENT.put("BLIP2_NODE_ID", "node.id");
        ENVIRONMENT.put("BLIP2_MODEL", "model.path");
        ENVIRONMENT.put("BLIP2_RETRIEVAL_MODEL", "model.retrieval_path");
        ENVIRONMENT.put("BLIP2_ENGINE", "model.engine");
        ENVIRONMENT.put("BLIP2_DTYPE", "model.dtype");
        ENVIRONMENT.put("BLIP2_DEVICES", "model.devices");
        ENVIRONMENT.put("BLIP2_CLUSTER_NAME", "cluster.name");
        ENVIRONMENT.put("BLIP2_CLUSTER_HOST", "cluster.host");
        ENVIRONMENT.put("BLIP2_CLUSTER_PORT", "cluster.port");
        ENVIRONMENT.put("BLIP2_CLUSTER_MEMBERS", "cluster.members");
        ENVIRONMENT.put("BLIP2_CLUSTER_KUBERNETES", "cluster.kubernetes");
        ENVIRONMENT.put("BLIP2_CLUSTER_SERVICE_NAME", "cluster.service_name");
        ENVIRONMENT.put("BLIP2_CLUSTER_NAMESPACE", "cluster.namespace");
        ENVIRONMENT.put("BLIP2_EVENT_BUS_PORT", "cluster.event_bus_port");
        ENVIRONMENT.put("BLIP2_CLUSTER_FAILURE_DETECTION_S", "cluster.failure_detection_s");
        ENVIRONMENT.put("BLIP2_CLUSTER_STATE_BACKUPS", "cluster.state_backups");
        ENVIRONMENT.put("BLIP2_CLUSTER_MERGE_DELAY_S", "cluster.merge_delay_s");
        ENVIRONMENT.put("BLIP2_CLUSTER_KEY_FILE", "cluster.key_file");
        ENVIRONMENT.put("BLIP2_CLUSTER_INSECURE", "cluster.insecure");
        ENVIRONMENT.put("BLIP2_CLUSTER_PUBLIC_HOST", "cluster.public_host");
        ENVIRONMENT.put("BLIP2_CLUSTER_TLS_DIR", "cluster.tls_dir");
        ENVIRONMENT.put("BLIP2_CACHE_ENABLED", "cache.enabled");
        ENVIRONMENT.put("BLIP2_CACHE_MAX_ENTRIES_PER_NODE", "cache.max_entries_per_node");
        ENVIRONMENT.put("BLIP2_CACHE_TTL_S", "cache.ttl_s");
        ENVIRONMENT.put("BLIP2_DATA_DIR", "data_dir");
        ENVIRONMENT.put("BLIP2_HTTP_HOST", "http.host");
        ENVIRONMENT.put("BLIP2_HTTP_PORT", "http.port");
        ENVIRONMENT.put("BLIP2_HTTP_ALLOWED_ORIGINS", "http.allowed_origins");
        ENVIRONMENT.put("BLIP2_HTTP_AUTH_TOKENS", "http.auth_tokens");
        ENVIRONMENT.put("BLIP2_HTTP_MAX_REQUESTS_PER_CONNECTION", "http.max_requests_per_connection");
        ENVIRONMENT.put("BLIP2_HTTP_MAX_IN_FLIGHT", "http.max_in_flight");
        ENVIRONMENT.put("BLIP2_HTTP_MAX_FRAME_BYTES", "http.max_frame_bytes");
        ENVIRONMENT.put("BLIP2_HTTP_MAX_MESSAGE_BYTES", "http.max_message_bytes");
        ENVIRONMENT.put("BLIP2_HTTP_IDLE_TIMEOUT_S", "http.idle_timeout_s");
        ENVIRONMENT.put("BLIP2_HTTP_WRITE_QUEUE_MAX_BYTES", "http.write_queue_max_bytes");
        ENVIRONMENT.put("BLIP2_HTTP_SEND_BUFFER_BYTES", "http.send_buffer_bytes");
        ENVIRONMENT.put("BLIP2_HTTP_FOLLOW_TIMEOUT_MS", "http.follow_timeout_ms");
        ENVIRONMENT.put("BLIP2_HTTP_MAX_SOCKETS_PER_TOKEN", "http.max_sockets_per_token");
        ENVIRONMENT.put("BLIP2_HTTP_ALLOWED_HOSTS", "http.allowed_hosts");
        ENVIRONMENT.put("BLIP2_HTTP_HEADER_TIMEOUT_MS", "http.header_timeout_ms");
        ENVIRONMENT.put("BLIP2_HTTP_BODY_TIMEOUT_MS", "http.body_timeout_ms");
        ENVIRONMENT.put("BLIP2_HTTP_TLS_CERT_FILE", "http.tls_cert_file");
        ENVIRONMENT.put("BLIP2_HTTP_TLS_KEY_FILE", "http.tls_key_file");
        ENVIRONMENT.put("BLIP2_REQUEST_RETENTION_MS", "requests.retention_ms");
        ENVIRONMENT.put("BLIP2_REQUEST_MAX_ENTRIES", "requests.max_entries");
        ENVIRONMENT.put("BLIP2_KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers");
        ENVIRONMENT.put("BLIP2_KAFKA_EMBEDDED_PORT", "kafka.embedded.port");
        ENVIRONMENT.put("BLIP2_KAFKA_EMBEDDED_CONTROLLER_PORT", "kafka.embedded.controller_port");
        ENVIRONMENT.put("BLIP2_KAFKA_GROUP_ID", "kafka.group_id");
        ENVIRONMENT.put("BLIP2_KAFKA_PARTITIONS", "kafka.partitions");
        ENVIRONMENT.put("BLIP2_KAFKA_REPLICATION_FACTOR", "kafka.replication_factor");
        ENVIRONMENT.put("BLIP2_TOPIC_REQUESTS", "kafka.topics.requests");
        ENVIRONMENT.put("BLIP2_TOPIC_CAPTIONS", "kafka.topics.captions");
        ENVIRONMENT.put("BLIP2_TOPIC_ANSWERS", "kafka.topics.answers");
        ENVIRONMENT.put("BLIP2_TOPIC_MATCHES", "kafka.topics.matches");
        ENVIRONMENT.put("BLIP2_TOPIC_EMBEDDINGS", "kafka.topics.embeddings");
        ENVIRONMENT.put("BLIP2_TOPIC_TOKENS", "kafka.topics.tokens");
        ENVIRONMENT.put("BLIP2_TOPIC_DEAD_LETTER", "kafka.topics.dead_letter");
        ENVIRONMENT.put("BLIP2_MAX_IN_FLIGHT_PER_PARTITION", "kafka.max_in_flight_per_partition");
        ENVIRONMENT.put("BLIP2_MAX_IN_FLIGHT", "kafka.max_in_flight");
        ENVIRONMENT.put("BLIP2_KAFKA_MAX_POLL_RECORDS", "kafka.max_poll_records");
        ENVIRONMENT.put("BLIP2_KAFKA_COMMIT_INTERVAL_MS", "kafka.commit_interval_ms");
        ENVIRONMENT.put("BLIP2_KAFKA_EXACTLY_ONCE", "kafka.exactly_once");
        ENVIRONMENT.put("BLIP2_KAFKA_POISON_AFTER_CRASHES", "kafka.poison_after_crashes");
        ENVIRONMENT.put("BLIP2_KAFKA_CLOUDEVENTS_OUTPUTS", "kafka.cloudevents.outputs");
        ENVIRONMENT.put("BLIP2_KAFKA_CLOUDEVENTS_SOURCE", "kafka.cloudevents.source");
        ENVIRONMENT.put("BLIP2_MAX_BATCH_SIZE", "inference.max_batch_size");
        ENVIRONMENT.put("BLIP2_MAX_BATCH_WAIT_MS", "inference.max_batch_wait_ms");
        ENVIRONMENT.put("BLIP2_MAX_JOIN_WAIT_MS", "inference.max_join_wait_ms");
        ENVIRONMENT.put("BLIP2_BATCHING", "inference.batching");
        ENVIRONMENT.put("BLIP2_DEFAULT_MAX_NEW_TOKENS", "inference.default_max_new_tokens");
        ENVIRONMENT.put("BLIP2_MAX_NEW_TOKENS_CAP", "inference.max_new_tokens_cap");
        ENVIRONMENT.put("BLIP2_MAX_PROMPT_TOKENS", "inference.max_prompt_tokens");
        ENVIRONMENT.put("BLIP2_MAX_TEXTS", "inference.max_texts");
        ENVIRONMENT.put("BLIP2_REQUEST_TIMEOUT_MS", "inference.request_timeout_ms");
        ENVIRONMENT.put("BLIP2_DEFAULT_DEADLINE_MS", "inference.default_deadline_ms");
        ENVIRONMENT.put("BLIP2_STEP_DELAY_MS", "inference.step_delay_ms");
        ENVIRONMENT.put("BLIP2_WARMUP_REQUESTS", "inference.warmup_requests");
        ENVIRONMENT.put("BLIP2_MAX_IMAGE_BYTES", "limits.max_image_bytes");
        ENVIRONMENT.put("BLIP2_MAX_IMAGE_PIXELS", "limits.max_image_pixels");
        ENVIRONMENT.put("BLIP2_MAX_RECORD_BYTES", "limits.max_record_bytes");
        ENVIRONMENT.put("BLIP2_IMAGES_ALLOWED_HOSTS", "images.allowed_hosts");
        ENVIRONMENT.put("BLIP2_IMAGES_ALLOW_HTTP", "images.allow_http");
        ENVIRONMENT.put("BLIP2_IMAGES_ALLOW_PRIVATE_ADDRESSES", "images.allow_private_addresses");
        ENVIRONMENT.put("BLIP2_IMAGES_FETCH_TIMEOUT_MS", "images.fetch_timeout_ms");
        ENVIRONMENT.put("BLIP2_IMAGES_MAX_REDIRECTS", "images.max_redirects");
        ENVIRONMENT.put("BLIP2_IMAGES_FILE_ROOT", "images.file_root");
        ENVIRONMENT.put("BLIP2_DRAIN_TIMEOUT_MS", "shutdown.drain_timeout_ms");
    }

    private ConfigLoader() {}

    /** Defaults, then {@code file} (may be null), then {@code env}, then {@code overrides} (dotted keys). */
    public static ServiceConfig load(Path file, Map<String, String> env, Map<String, String> overrides) {
        ObjectNode tree = defaults();
        if (file != null) {
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException("config file " + file + " does not exist");
            }
            try {
                JsonNode n = YAML.readTree(file.toFile());
                if (n != null && !n.isNull()) {
                    if (!n.isObject()) {
                        throw new IllegalArgumentException("config file " + file + " is not a YAML mapping");
                    }
                    merge(tree, (ObjectNode) n, "");
                }
            } catch (IOException e) {
                throw new IllegalArgumentException("config file " + file + ": " + e.getMessage(), e);
            }
        }
        for (Map.Entry<String, String> e : ENVIRONMENT.entrySet()) {
            String v = env.get(e.getKey());
            if (v != null && !v.isEmpty()) {
                set(tree, e.getValue(), v);
            }
        }
        overrides.forEach((k, v) -> set(tree, k, v));
        return ServiceConfig.from(tree);
    }

    static ObjectNode defaults() {
        try (InputStream in = ConfigLoader.class.getResourceAsStream("/conf/application.yaml")) {
            if (in == null) {
                throw new IllegalStateException("conf/application.yaml is missing from the class path");
            }
            return (ObjectNode) YAML.readTree(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Overlays {@code over} on {@code base}; unknown keys are refused, naming them, except under pass-through maps. */
    static void merge(ObjectNode base, ObjectNode over, String path) {
        for (Iterator<Map.Entry<String, JsonNode>> it = over.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String key = path.isEmpty() ? e.getKey() : path + "." + e.getKey();
            JsonNode old = base.get(e.getKey());
            if (old == null && !passThrough(path)) {
                throw new IllegalArgumentException("unknown configuration key '" + key + "'");
            }
            if (old != null && old.isObject() && e.getValue().isObject() && !passThrough(key)) {
                merge((ObjectNode) old, (ObjectNode) e.getValue(), key);
            } else {
                base.set(e.getKey(), e.getValue());
            }
        }
    }

    private static boolean passThrough(String path) {
        return path.equals("kafka.consumer") || path.equals("kafka.producer");
    }

    /** Sets a dotted key from a string, typed like the default it replaces (lists are comma-separated). */
    static void set(ObjectNode tree, String dotted, String value) {
        String[] parts = dotted.split("\\.");
        ObjectNode node = tree;
        for (int i = 0; i < parts.length - 1; i++) {
            JsonNode next = node.get(parts[i]);
            if (next == null || !next.isObject()) {
                throw new IllegalArgumentException("unknown configuration key '" + dotted + "'");
            }
            node = (ObjectNode) next;
        }
        String leaf = parts[parts.length - 1];
        JsonNode old = node.get(leaf);
        if (old == null) {
            throw new IllegalArgumentException("unknown configuration key '" + dotted + "'");
        }
        try {
            if (old.isArray()) {
                ArrayNode a = node.putArray(leaf);
                for (String s : value.split(",")) {
                    if (!s.isBlank()) {
                        a.add(s.trim());
                    }
                }
            } else if (old.isIntegralNumber()) {
                node.put(leaf, Long.parseLong(value.trim()));
            } else if (old.isBoolean()) {
                node.put(leaf, Boolean.parseBoolean(value.trim()));
            } else {
                node.put(leaf, value);
            }
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("configuration key '" + dotted + "' needs a number, got '" + value + "'");
        }
    }
}
