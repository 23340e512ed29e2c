package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import io.blip2stream.TestPorts;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hazelcast member loss (issue 9, item 9): three real members with the service's own configuration
 * ({@link ClusterBootstrap#hazelcastConfig}); 300 finished requests recorded through {@link RequestStore}; one
 * member killed without warning (terminate, as a crash). With {@code cluster.state_backups: 1} (the default) every
 * request's state is still there on the survivors; with 0 backups the same crash loses the states that member owned,
 * which shows the test sees a loss when there is one.
 */
@Tag("cluster")
@Timeout(180)
class MemberLossTest {
    static final int REQUESTS = Integer.getInteger("blip2.memberloss.requests", 300); // long-tests: 5,000

    /** The number of the REQUESTS states the survivors still hold after one of three members crashed. */
    static int survivingStates(int backups) throws Exception {
        List<HazelcastInstance> hz = new ArrayList<>();
        Vertx vertx = Vertx.vertx();
        try {
            RequestStateMergePolicy.use(KEY);
            for (ServiceConfig c : memberConfigs("loss-", Map.of("cluster.state_backups", String.valueOf(backups)))) {
                hz.add(Hazelcast.newHazelcastInstance(ClusterBootstrap.hazelcastConfig(c.cluster())));
            }
            long end = System.currentTimeMillis() + 60_000;
            while (hz.get(0).getCluster().getMembers().size() < 3 && System.currentTimeMillis() < end) {
                Thread.sleep(100);
            }
            assertEquals(3, hz.get(0).getCluster().getMembers().size(), "three members joined");
            awaitSafe(hz); // the joins' partition migrations done: the crash below hits a settled cluster
            Context ctx = vertx.getOrCreateContext();
            RequestStore writer = store(hz.get(0));
            List<Future<Void>> writes = new ArrayList<>();
            for (int i = 0; i < REQUESTS; i++) {
                writes.add(writer.finished("r-" + i, "caption", "kafka", null,
                        JsonNodeFactory.instance.objectNode().put("text", "caption " + i), null, null, true, "t/0/" + i, ctx));
            }
            Future.all(writes).toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
            awaitSafe(hz);

            hz.get(1).getLifecycleService().terminate(); // a crash: no graceful migration
            end = System.currentTimeMillis() + 60_000;
            while (hz.get(0).getCluster().getMembers().size() > 2 && System.currentTimeMillis() < end) {
                Thread.sleep(100);
            }
            assertEquals(2, hz.get(0).getCluster().getMembers().size(), "the crashed member was dropped");
            RequestStore reader = store(hz.get(2));
            int found = 0;
            for (int i = 0; i < REQUESTS; i++) {
                var state = reader.get("r-" + i, ctx).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
                if (state != null && state.path("result").path("text").asText().equals("caption " + i)) {
                    found++;
                }
            }
            return found;
        } finally {
            for (HazelcastInstance h : hz) {
                if (h.getLifecycleService().isRunning()) {
                    h.getLifecycleService().terminate();
                }
            }
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }

    /**
     * Waits until no partition is migrating and every backup is in sync on every member (Hazelcast's "cluster safe"):
     * a member that crashes while the partitions of a just-formed cluster are still moving can take a partition's
     * only copy with it (CI, 2026-11-28: 247 of 300 states with one backup), which is not what this test is about.
     */
    static void awaitSafe(List<HazelcastInstance> hz) throws InterruptedException {
        long end = System.currentTimeMillis() + 60_000;
        while (System.currentTimeMillis() < end) {
            if (hz.stream().allMatch(h -> h.getPartitionService().isClusterSafe())) {
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError("the cluster did not become safe (migrations, backups) within 60 s");
    }

    /** The service's configuration of three members on free loopback ports, each listing the others, plus {@code more}. */
    static List<ServiceConfig> memberConfigs(String namePrefix, Map<String, String> more) throws IOException {
        String name = namePrefix + UUID.randomUUID();
        int[] ports = {TestPorts.free(), TestPorts.free(), TestPorts.free()};
        String members = "127.0.0.1:" + ports[0] + ",127.0.0.1:" + ports[1] + ",127.0.0.1:" + ports[2];
        List<ServiceConfig> out = new ArrayList<>();
        for (int port : ports) {
            Map<String, String> o = new java.util.HashMap<>(more);
            o.put("cluster.name", name);
            o.put("cluster.port", String.valueOf(port));
            o.put("cluster.members", members);
            o.put("cluster.failure_detection_s", "3");
            out.add(ConfigLoader.load(null, Map.of(), o));
        }
        return out;
    }

    /** The cluster key the tests' members share. */
    static final ClusterCipher KEY = ClusterCipher.of("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");

    static RequestStore store(HazelcastInstance h) {
        return new RequestStore(h.getMap(ClusterBootstrap.REQUESTS_MAP), KEY, 3_600_000, h.getCluster().getLocalMember().getUuid().toString(),
                m -> true);
    }

    @Test
    void oneBackupLosesNoRequestStateWhenAMemberCrashes() throws Exception {
        assertEquals(REQUESTS, survivingStates(1), "every state survives the crash");
    }

    @Test
    void withoutBackupsTheSameCrashLosesState() throws Exception {
        int found = survivingStates(0);
        System.out.println("without backups " + found + " of " + REQUESTS + " states survived the crash");
        assertTrue(found < REQUESTS, "the states the crashed member owned are gone: " + found + " of " + REQUESTS + " left");
    }
}
