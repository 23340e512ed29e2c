package io.blip2stream.cluster;

import com.hazelcast.config.Config;
import com.hazelcast.config.EvictionConfig;
import com.hazelcast.config.EvictionPolicy;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.MapConfig;
import com.hazelcast.config.MaxSizePolicy;
import com.hazelcast.config.NetworkConfig;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.eventbus.EventBusOptions;
import io.vertx.spi.cluster.hazelcast.ConfigUtil;
import io.vertx.spi.cluster.hazelcast.HazelcastClusterManager;

/**
 * Clustered Vert.x on Hazelcast. Members find each other by TCP-IP from a list (local runs, docker-compose) or
 * through the Kubernetes API (a headless Service); multicast and auto-detection are off. With no members listed
 * a node runs alone as a single embedded member. The request-state map keeps backups; the visual-prompt cache is
 * bounded per member with LRU eviction and a TTL.
 */
public final class ClusterBootstrap {
    public static final String REQUESTS_MAP = "blip2-requests";
    public static final String VISUAL_PROMPTS_MAP = "blip2-visual-prompts";
    public static final String RECORDS_IN_FLIGHT_MAP = "blip2-records-in-flight";

    private ClusterBootstrap() {}

    public static Config hazelcastConfig(ClusterSettings c) {
        ClusterSettings.Maps maps = c.maps();
        Config hz = ConfigUtil.loadConfig();
        hz.setClusterName(c.name());
        hz.setProperty("hazelcast.phone.home.enabled", "false");
        hz.setProperty("hazelcast.logging.type", "slf4j");
        hz.setProperty("hazelcast.wait.seconds.before.join", "0");
        hz.setProperty("hazelcast.max.wait.seconds.before.join", "0");
        hz.setProperty("hazelcast.heartbeat.interval.seconds", "1");
        hz.setProperty("hazelcast.max.no.heartbeat.seconds", String.valueOf(Math.max(2, c.failureDetectionS())));
        hz.setProperty("hazelcast.shutdownhook.enabled", "false"); // the service stops it, after draining
        NetworkConfig net = hz.getNetworkConfig();
        net.setPort(c.port()).setPortAutoIncrement(true);
        JoinConfig join = net.getJoin();
        join.getMulticastConfig().setEnabled(false);
        join.getAutoDetectionConfig().setEnabled(false);
        String host = bindHost(c, System.getenv());
        boolean ip = host.matches("[0-9.]+");
        if (ip) {
            net.getInterfaces().setEnabled(true).addInterface(host);
            // listen on that address only: Hazelcast binds every interface (*:5701) by default, whatever address it
            // announces, so any process that reaches the machine could join or read the cluster
            hz.setProperty("hazelcast.socket.bind.any", "false");
        }
        String announced = c.publicHost().isBlank() ? host : c.publicHost();
        if (!announced.equals(host) || !ip) {
            // a host name (docker compose), or NAT: announce it, on the port given (not the next one: peers dial this one)
            net.setPublicAddress(announced + ":" + c.port());
            net.setPortAutoIncrement(false);
        }
        if (c.kubernetes()) {
            join.getTcpIpConfig().setEnabled(false);
            var k = join.getKubernetesConfig().setEnabled(true);
            if (!c.serviceName().isBlank()) {
                k.setProperty("service-name", c.serviceName());
            }
            if (!c.namespace().isBlank()) {
                k.setProperty("namespace", c.namespace());
            }
        } else {
            var tcp = join.getTcpIpConfig().setEnabled(true);
            tcp.addMember(announced + ":" + c.port());
            for (String m : c.members()) {
                tcp.addMember(m);
            }
        }
        // a network split heals when the halves find each other again: the smaller one joins the larger, and each
        // request keeps its most advanced state of the two (RequestStateMergePolicy)
        hz.setProperty("hazelcast.merge.first.run.delay.seconds", String.valueOf(Math.max(1, c.mergeDelayS())));
        hz.setProperty("hazelcast.merge.next.run.delay.seconds", String.valueOf(Math.max(1, c.mergeDelayS())));
        MapConfig requests = new MapConfig(REQUESTS_MAP).setBackupCount(Math.max(0, c.stateBackups()))
                .setTimeToLiveSeconds((int) Math.max(1, maps.requestRetentionMs() / 1000))
                .setPerEntryStatsEnabled(true); // each entry's last update time, which the merge policy compares
        requests.getMergePolicyConfig().setPolicy(RequestStateMergePolicy.class.getName());
        hz.addMapConfig(requests);
        // which Kafka records each node has in hand, and how often a node died holding them (poison pills)
        hz.addMapConfig(new MapConfig(RECORDS_IN_FLIGHT_MAP).setBackupCount(Math.max(0, c.stateBackups()))
                .setTimeToLiveSeconds((int) Math.max(1, maps.requestRetentionMs() / 1000)));
        hz.addMapConfig(new MapConfig(VISUAL_PROMPTS_MAP).setBackupCount(0)
                .setTimeToLiveSeconds(Math.max(1, maps.visualPromptTtlS()))
                .setEvictionConfig(new EvictionConfig().setEvictionPolicy(EvictionPolicy.LRU)
                        .setMaxSizePolicy(MaxSizePolicy.PER_NODE).setSize(Math.max(1, maps.visualPromptsPerMember()))));
        return hz;
    }

    /**
     * The key the node seals the cluster's state with: {@code cluster.key_file}; for a node alone, a random key of its
     * own; for several nodes without one, a refusal, unless {@code cluster.insecure} (then a key derived from the
     * cluster's name, which anyone can derive: no protection, said in the log).
     */
    public static ClusterCipher cipher(ClusterSettings c) {
        if (!c.keyFile().isBlank()) {
            return ClusterCipher.fromFile(java.nio.file.Path.of(c.keyFile()));
        }
        if (!c.expectsOthers()) {
            return ClusterCipher.ephemeral();
        }
        if (!c.insecure()) {
            throw new IllegalArgumentException("several nodes (cluster.members or cluster.kubernetes) need a cluster key: set "
                    + "BLIP2_CLUSTER_KEY_FILE (cluster.key_file) to the same file on every node, made with "
                    + "`head -c 32 /dev/urandom | base64 > cluster.key`; or BLIP2_CLUSTER_INSECURE=true to run without (anyone "
                    + "who reaches the Hazelcast port can then read and forge the cluster's state)");
        }
        org.slf4j.LoggerFactory.getLogger(ClusterBootstrap.class).warn("cluster.insecure: the cluster's state is readable and "
                + "forgeable by anyone who reaches this node's Hazelcast port");
        return ClusterCipher.insecure(c.name());
    }

    /**
     * The event bus's mutual TLS: {@code cluster.tls_dir}; for a node alone on loopback without one, none (nothing
     * but its own machine reaches its ports); for several nodes, or a node on an address other machines reach (a
     * foreign member could join it there), a refusal without one, unless {@code cluster.insecure}.
     */
    public static java.util.Optional<ClusterTls> tls(ClusterSettings c) {
        if (!c.tlsDir().isBlank()) {
            return java.util.Optional.of(ClusterTls.load(java.nio.file.Path.of(c.tlsDir())));
        }
        String host = bindHost(c, System.getenv());
        boolean reachable = !loopback(host);
        if ((c.expectsOthers() || reachable) && !c.insecure()) {
            String who = c.expectsOthers() ? "several nodes (cluster.members or cluster.kubernetes) need"
                    : "a node on " + host + " (cluster.host), which other machines reach, needs";
            throw new IllegalArgumentException(who + " certificates for their event bus: set BLIP2_CLUSTER_TLS_DIR (cluster.tls_dir) "
                    + "on each node to its folder made by `blip2-stream certs --out certs --nodes N`; or BLIP2_CLUSTER_INSECURE=true to "
                    + "run without (anyone who reaches the event bus port can then read and send the cluster's messages)");
        }
        if (c.expectsOthers() || reachable) {
            org.slf4j.LoggerFactory.getLogger(ClusterBootstrap.class).warn("cluster.insecure: the event bus is plain TCP; anyone "
                    + "who reaches this node's event bus port can read and send the cluster's messages");
        }
        return java.util.Optional.empty();
    }

    /** The event bus on this node's cluster host, announced as its public host, over mutual TLS where configured. */
    public static EventBusOptions eventBusOptions(ClusterSettings c, java.util.Optional<ClusterTls> tls) {
        String host = bindHost(c, System.getenv());
        String announced = c.publicHost().isBlank() ? host : c.publicHost();
        EventBusOptions options = new EventBusOptions().setHost(host).setPort(c.eventBusPort())
                .setClusterPublicHost(announced);
        tls.ifPresent(t -> t.applyTo(options));
        return options;
    }

    /** A clustered Vert.x with {@link #eventBusOptions}. */
    public static Future<Vertx> start(ClusterSettings c, java.util.Optional<ClusterTls> tls, VertxOptions options,
                                      HazelcastClusterManager manager) {
        options.setEventBusOptions(eventBusOptions(c, tls));
        return Vertx.builder().with(options).withClusterManager(manager).buildClustered();
    }

    /**
     * The address Hazelcast and the event bus listen on: in Kubernetes the pod's IP (POD_IP, the Downward API) where
     * given, else cluster.host; in Kubernetes never loopback (each pod would then reach only itself, silently).
     */
    static String bindHost(ClusterSettings c, java.util.Map<String, String> env) {
        String ip = c.kubernetes() ? env.get("POD_IP") : null;
        String host = ip == null || ip.isBlank() ? c.host() : ip;
        if (c.kubernetes() && loopback(host)) {
            throw new IllegalArgumentException("cluster.kubernetes: the pod's address is needed (POD_IP from the Downward API, "
                    + "or BLIP2_CLUSTER_HOST), not " + host + ": on loopback each pod would reach only itself");
        }
        return host;
    }

    /** Whether only this machine reaches {@code host}. */
    static boolean loopback(String host) {
        return host.startsWith("127.") || host.equals("localhost");
    }
}
