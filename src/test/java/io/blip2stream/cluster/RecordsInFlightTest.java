package io.blip2stream.cluster;

import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import io.blip2stream.service.config.ServiceConfig;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Issue 19, item 2, across nodes, with three real members: a record in a member's hands when that member crashes
 * counts one crash for the member that takes it next; one handed over by a member that is alive (a rebalance)
 * counts none; one that was answered leaves no marker; a later owner's marker is not removed by the member that
 * held the record before.
 */
@Tag("cluster")
@Timeout(180)
class RecordsInFlightTest {

    static <T> T await(Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }

    static RecordsInFlight of(HazelcastInstance h, List<HazelcastInstance> all) {
        return new RecordsInFlight(h.getMap(ClusterBootstrap.RECORDS_IN_FLIGHT_MAP), MemberLossTest.KEY,
                h.getCluster().getLocalMember().getUuid().toString(),
                uuid -> all.stream().anyMatch(x -> x.getLifecycleService().isRunning()
                        && x.getCluster().getLocalMember().getUuid().toString().equals(uuid)));
    }

    @Test
    void aRecordInACrashedMembersHandsCountsOneCrashForItsNextOwner() throws Exception {
        List<HazelcastInstance> hz = new ArrayList<>();
        Vertx vertx = Vertx.vertx();
        try {
            for (ServiceConfig c : MemberLossTest.memberConfigs("inflight-", Map.of())) {
                hz.add(Hazelcast.newHazelcastInstance(ClusterBootstrap.hazelcastConfig(c.cluster())));
            }
            long end = System.currentTimeMillis() + 60_000;
            while (hz.get(0).getCluster().getMembers().size() < 3 && System.currentTimeMillis() < end) {
                Thread.sleep(100);
            }
            MemberLossTest.awaitSafe(hz);
            Context ctx = vertx.getOrCreateContext();
            RecordsInFlight a = of(hz.get(0), hz);
            RecordsInFlight b = of(hz.get(1), hz);
            RecordsInFlight c = of(hz.get(2), hz);

            assertEquals(0, await(a.take("t/0/1", ctx)), "a new record");
            assertEquals(0, await(a.take("t/0/2", ctx)));
            assertEquals(0, await(a.take("t/0/3", ctx)));
            assertEquals(0, await(a.take("t/0/4", ctx)));
            await(a.armed("t/0/4", 0, false, ctx)); // waiting behind a suspect when a dies
            await(a.done("t/0/3", ctx)); // answered
            assertEquals(0, await(b.take("t/0/2", ctx)), "handed over by a live member (a rebalance): no crash");
            await(a.done("t/0/2", ctx)); // the old holder finishing does not remove b's marker
            MemberLossTest.awaitSafe(hz);

            hz.get(0).getLifecycleService().terminate(); // a crashes with t/0/1 in hand
            end = System.currentTimeMillis() + 60_000;
            while (hz.get(1).getCluster().getMembers().size() > 2 && System.currentTimeMillis() < end) {
                Thread.sleep(100);
            }
            MemberLossTest.awaitSafe(hz.subList(1, 3)); // the backups of a's partitions promoted and copied again
            assertEquals(1, await(c.take("t/0/1", ctx)), "its holder died with it in hand");
            assertEquals(0, await(c.take("t/0/3", ctx)), "answered before the crash: no marker left");
            assertEquals(0, await(c.take("t/0/4", ctx)), "waiting to start when its holder died: not counted");
            hz.get(1).getLifecycleService().terminate(); // b crashes with t/0/2 (its own marker) in hand
            end = System.currentTimeMillis() + 60_000;
            while (hz.get(2).getCluster().getMembers().size() > 1 && System.currentTimeMillis() < end) {
                Thread.sleep(100);
            }
            assertEquals(1, await(c.take("t/0/2", ctx)), "b's marker survived a's done; b died with it");
            assertEquals(1, await(c.take("t/0/1", ctx)), "read again by the same live member: no new crash");
        } finally {
            for (HazelcastInstance h : hz) {
                if (h.getLifecycleService().isRunning()) {
                    h.getLifecycleService().terminate();
                }
            }
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }
}
