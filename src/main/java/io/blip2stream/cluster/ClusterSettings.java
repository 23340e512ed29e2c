package io.blip2stream.cluster;

import java.util.List;

/**
 * The cluster layer's own settings: how this node's Hazelcast member and event bus find the others, how the
 * cluster's state is protected, and how long its maps keep entries. The service fills them from its
 * configuration ({@code cluster.*}, {@code requests.retention_ms}, {@code cache.*}); nothing here knows that
 * configuration.
 *
 * @param keyFile    the cluster key file (base64 keys, one a line, the first seals), or blank
 * @param insecure   several nodes without a key or certificates: their state readable and forgeable, their event
 *                   bus open, to anyone who reaches them
 * @param publicHost the address peers reach this node at, where it differs from {@code host} (NAT, a container's
 *                   name); blank: {@code host}
 * @param tlsDir     the event bus's mutual TLS: a folder with {@code ca.pem}, {@code node.pem} and
 *                   {@code node-key.pem} (the {@code certs} command makes them), or blank
 * @param maps       how long the cluster's maps keep entries
 */
public record ClusterSettings(String name, String host, int port, List<String> members, boolean kubernetes,
                              String serviceName, String namespace, int eventBusPort, int failureDetectionS,
                              int stateBackups, int mergeDelayS, String keyFile, boolean insecure, String publicHost,
                              String tlsDir, Maps maps) {

    /**
     * @param requestRetentionMs        how long a finished request's state and a record's claim are kept
     * @param visualPromptTtlS          how long a cached visual prompt is kept
     * @param visualPromptsPerMember    the most visual prompts a member holds (then least recently used go)
     */
    public record Maps(long requestRetentionMs, int visualPromptTtlS, int visualPromptsPerMember) {}

    /** Whether this node expects others (members listed, or discovered in Kubernetes). */
    public boolean expectsOthers() {
        return kubernetes || !members.isEmpty();
    }
}
