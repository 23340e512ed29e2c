package io.blip2stream.bench;

import com.hazelcast.config.Config;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import io.blip2stream.cluster.ClusterBootstrap;
import io.blip2stream.cluster.ClusterCipher;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.function.IntConsumer;

/**
 * What sealing the cluster's state costs (issue 20): per visual-prompt cache hit (a keyed hash of the key, then
 * opening 32 x hidden float32: 327,680 bytes for blip2-opt-2.7b, 262,144 for blip2-flan-t5-xl) and per request-state
 * write (sealing the state's JSON, from a queued state to a finished one with 512 tokens), each beside what the same
 * operation costs anyway in the same run: the Hazelcast map operation between two members on loopback, which the
 * service makes with or without sealing, and a copy of the same bytes (the machine's memory bandwidth). Each figure
 * is the median over {@code runs} runs of the median time per operation in a run.
 */
public final class ClusterCipherBench {
    /** One operation's figures, in microseconds (medians). */
    public record Row(String operation, int bytes, double sealUs, double mapUs, double copyUs) {
        /** Sealing's share of the operation with the map. */
        public double overhead() {
            return sealUs / mapUs;
        }
    }

    private ClusterCipherBench() {}

    public static List<Row> run(int runs, int iterations) {
        ClusterCipher cipher = ClusterCipher.of(java.util.Base64.getEncoder().encodeToString(new byte[32]));
        HazelcastInstance a = null;
        HazelcastInstance b = null;
        try {
            String name = "bench-" + UUID.randomUUID();
            a = Hazelcast.newHazelcastInstance(member(name, 0));
            int portA = a.getCluster().getLocalMember().getAddress().getPort();
            b = Hazelcast.newHazelcastInstance(member(name, portA));
            IMap<String, byte[]> prompts = a.getMap(ClusterBootstrap.VISUAL_PROMPTS_MAP);
            IMap<String, String> states = a.getMap(ClusterBootstrap.REQUESTS_MAP);
            IMap<String, byte[]> promptsRemote = b.getMap(ClusterBootstrap.VISUAL_PROMPTS_MAP);
            List<Row> rows = new ArrayList<>();
            Random random = new Random(1);
            for (int hidden : new int[] {2560, 2048}) {
                byte[] value = new byte[32 * hidden * 4];
                random.nextBytes(value);
                String imageKey = "sha256-of-the-image:" + hidden;
                String hiddenKey = cipher.hashKey(imageKey);
                byte[] sealed = cipher.seal(ClusterBootstrap.VISUAL_PROMPTS_MAP, hiddenKey, value);
                prompts.set(hiddenKey, sealed);
                // the entry's owner is one member; read it from whichever is not, as a hit from another node does
                IMap<String, byte[]> reader = a.getPartitionService().getPartition(hiddenKey).getOwner().localMember() ? promptsRemote : prompts;
                byte[] sink = new byte[value.length];
                double seal = median(runs, iterations, i -> cipher.open(ClusterBootstrap.VISUAL_PROMPTS_MAP, cipher.hashKey(imageKey), sealed));
                double map = median(runs, iterations, i -> reader.get(hiddenKey));
                double copy = median(runs, iterations, i -> System.arraycopy(value, 0, sink, 0, value.length));
                rows.add(new Row("cache hit, 32 x " + hidden + " float32", value.length, seal, map, copy));
            }
            for (int tokens : new int[] {0, 20, 512}) {
                String state = state(tokens);
                byte[] bytes = state.getBytes(StandardCharsets.UTF_8);
                byte[] sink = new byte[bytes.length];
                String id = "req-" + tokens;
                double seal = median(runs, iterations, i -> cipher.seal(ClusterBootstrap.REQUESTS_MAP, id, state));
                String sealed = cipher.seal(ClusterBootstrap.REQUESTS_MAP, id, state);
                double map = median(runs, iterations, i -> states.set(id + "-" + (i & 63), sealed));
                double copy = median(runs, iterations, i -> System.arraycopy(bytes, 0, sink, 0, bytes.length));
                rows.add(new Row("state write, " + tokens + " tokens", bytes.length, seal, map, copy));
            }
            return rows;
        } finally {
            if (b != null) {
                b.getLifecycleService().terminate();
            }
            if (a != null) {
                a.getLifecycleService().terminate();
            }
        }
    }

    /** A request state as the request store writes it: queued (no tokens) or done with {@code tokens} generated. */
    static String state(int tokens) {
        StringBuilder ids = new StringBuilder();
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < tokens; i++) {
            ids.append(i == 0 ? "" : ",").append(1000 + i * 37 % 50000);
            text.append(i == 0 ? "" : " ").append("word").append(i % 97);
        }
        String result = tokens == 0 ? "null" : "{\"id\":\"req\",\"task\":\"caption\",\"text\":\"" + text + "\",\"token_ids\":[" + ids
                + "],\"finish_reason\":\"length\",\"model\":\"blip2-opt-2.7b\",\"node\":\"node-1\",\"visual_prompt\":\"computed\","
                + "\"timings\":{\"queued_ms\":1.2,\"vision_ms\":16600.0,\"qformer_ms\":800.0,\"prefill_ms\":1800.0,\"decode_ms\":10600.0}}";
        return "{\"id\":\"req\",\"status\":\"" + (tokens == 0 ? "queued" : "done") + "\",\"task\":\"caption\",\"source\":\"http\","
                + "\"owner\":\"3f2a9c\",\"claimed_by\":\"6c1d5e0a-1b2c-4d5e-8f90-a1b2c3d4e5f6\",\"content\":\"9b7e4f\",\"updated\":1765000000000,"
                + "\"result\":" + result + "}";
    }

    private static Config member(String name, int join) {
        Config c = new Config().setClusterName(name);
        c.setProperty("hazelcast.phone.home.enabled", "false");
        c.setProperty("hazelcast.logging.type", "none");
        c.setProperty("hazelcast.wait.seconds.before.join", "0");
        c.setProperty("hazelcast.socket.bind.any", "false");
        var net = c.getNetworkConfig();
        net.setPort(join == 0 ? 5801 : join + 1).setPortAutoIncrement(true).setPortCount(200);
        net.getInterfaces().setEnabled(true).addInterface("127.0.0.1");
        net.getJoin().getMulticastConfig().setEnabled(false);
        net.getJoin().getAutoDetectionConfig().setEnabled(false);
        net.getJoin().getTcpIpConfig().setEnabled(true).addMember("127.0.0.1:" + (join == 0 ? 5801 : join));
        c.addMapConfig(new com.hazelcast.config.MapConfig(ClusterBootstrap.REQUESTS_MAP).setBackupCount(1));
        c.addMapConfig(new com.hazelcast.config.MapConfig(ClusterBootstrap.VISUAL_PROMPTS_MAP).setBackupCount(0));
        return c;
    }

    /** The median over runs of each run's median time per operation, in microseconds (after a warm-up run). */
    static double median(int runs, int iterations, IntConsumer op) {
        long[] one = new long[iterations];
        double[] perRun = new double[runs];
        for (int r = -1; r < runs; r++) {
            for (int i = 0; i < iterations; i++) {
                long t0 = System.nanoTime();
                op.accept(i);
                one[i] = System.nanoTime() - t0;
            }
            if (r >= 0) {
                long[] s = one.clone();
                Arrays.sort(s);
                perRun[r] = s[iterations / 2] / 1000.0;
            }
        }
        Arrays.sort(perRun);
        return perRun[runs / 2];
    }

    /** The rows as the command prints them. */
    public static Map<String, Object> json(Row r) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("operation", r.operation());
        m.put("bytes", r.bytes());
        m.put("seal_us", r.sealUs());
        m.put("map_us", r.mapUs());
        m.put("copy_us", r.copyUs());
        m.put("seal_over_map", r.overhead());
        return m;
    }
}
