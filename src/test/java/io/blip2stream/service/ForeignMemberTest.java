package io.blip2stream.service;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hazelcast.config.Config;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import io.blip2stream.TestPorts;
import io.blip2stream.cluster.ClusterBootstrap;
import io.blip2stream.model.Fixtures;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, items 3 and 4, with a real node and a real foreign Hazelcast member that knows the cluster's name and
 * address (what the attacker knew): it joins, but reads no result and no image hash in plaintext; a state
 * it forges is never served (GET answers 404) and is counted; visual prompts it plants are not used (the caption
 * stays the node's own); and when it clears both maps the node goes on answering.
 */
class ForeignMemberTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static <T> T await(io.vertx.core.Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    @Test
    void aForeignMemberReadsNothingAndWhatItWritesIsNeverServed() throws Exception {
        Vertx client = Vertx.vertx();
        WebClient web = WebClient.create(client);
        HazelcastInstance foreign = null;
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of())) {
            int port = h.service.httpPort();
            byte[] png = Fixtures.image("blip2-opt-tiny", 0);
            JsonObject body = new JsonObject().put("id", "secret-1").put("image", Base64.getEncoder().encodeToString(png))
                    .put("params", new JsonObject().put("max_new_tokens", 6));
            HttpResponse<Buffer> first = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(body));
            assertEquals(200, first.statusCode(), first.bodyAsString());
            JsonNode result = JSON.readTree(first.bodyAsString());

            // the foreign member: the node's cluster name and address, nothing else
            HazelcastInstance node = h.service.hazelcast();
            Config c = new Config().setClusterName(node.getConfig().getClusterName());
            c.setProperty("hazelcast.phone.home.enabled", "false");
            c.setProperty("hazelcast.wait.seconds.before.join", "0");
            c.getNetworkConfig().setPort(TestPorts.free()).setPortAutoIncrement(false);
            c.getNetworkConfig().getJoin().getMulticastConfig().setEnabled(false);
            c.getNetworkConfig().getJoin().getAutoDetectionConfig().setEnabled(false);
            c.getNetworkConfig().getInterfaces().setEnabled(true).addInterface("127.0.0.1");
            var address = node.getCluster().getLocalMember().getAddress();
            c.getNetworkConfig().getJoin().getTcpIpConfig().setEnabled(true).addMember(address.getHost() + ":" + address.getPort());
            foreign = Hazelcast.newHazelcastInstance(c);
            assertEquals(2, node.getCluster().getMembers().size(), "it joins: the open-source edition cannot refuse it");

            IMap<String, String> states = foreign.getMap(ClusterBootstrap.REQUESTS_MAP);
            String stored = states.get("secret-1");
            assertTrue(stored != null && stored.startsWith("s1."), "the state is there, sealed: " + stored);
            assertFalse(stored.contains(result.path("text").asText()) || stored.contains("token_ids") || stored.contains("done"),
                    "no result in plaintext");
            IMap<String, byte[]> prompts = foreign.getMap(ClusterBootstrap.VISUAL_PROMPTS_MAP);
            String imageHash = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(png));
            assertFalse(prompts.keySet().isEmpty(), "the cache holds the image's visual prompt");
            assertTrue(prompts.keySet().stream().noneMatch(k -> k.contains(imageHash)), "no image hash among the keys");

            // forged states: not served, counted
            states.put("forged-1", "{\"status\":\"done\",\"task\":\"caption\",\"result\":{\"text\":\"FORGED BY A FOREIGN MEMBER\"}}");
            states.put("forged-2", stored); // a real sealed state moved to another id
            for (String id : new String[] {"forged-1", "forged-2"}) {
                HttpResponse<Buffer> r = await(web.get(port, "127.0.0.1", "/v1/requests/" + id).send());
                assertEquals(404, r.statusCode(), id + ": " + r.bodyAsString());
                assertFalse(r.bodyAsString().contains("FORGED"));
            }
            assertTrue(h.service.metrics().scrape().contains("blip2_cluster_rejected_values_total 2.0"), "counted");

            // planted visual prompts: random floats under every key; the same image's caption stays the node's own
            java.util.Random random = new java.util.Random(7);
            for (String k : prompts.keySet()) {
                byte[] junk = new byte[prompts.get(k).length];
                random.nextBytes(junk);
                prompts.put(k, junk);
            }
            HttpResponse<Buffer> again = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(body.copy().put("id", "secret-2")));
            assertEquals(200, again.statusCode(), again.bodyAsString());
            assertEquals(result.path("token_ids"), JSON.readTree(again.bodyAsString()).path("token_ids"), "the planted prompt was not used");

            // a foreign member can still delete: the node goes on
            states.clear();
            prompts.clear();
            HttpResponse<Buffer> after = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(body.copy().put("id", "secret-3")));
            assertEquals(200, after.statusCode(), after.bodyAsString());
            assertEquals(result.path("token_ids"), JSON.readTree(after.bodyAsString()).path("token_ids"));
            assertTrue(h.blockedEventLoops.isEmpty(), h.blockedEventLoops.toString());
        } finally {
            if (foreign != null) {
                foreign.getLifecycleService().terminate();
            }
            web.close();
            client.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }
}
