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
import org.junit.jupiter.api.Tag;
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
 * Issue 20, items 3 and 4, with a real node, a real foreign Hazelcast client and a real foreign member that know the
 * cluster's name and address (what the attacker knew): the client reads the state only sealed and what it
 * forges gets 404; the member joins, but reads no result and no image hash in plaintext; a state
 * it forges is never served (GET answers 404) and is counted; visual prompts it plants are not used (the caption
 * stays the node's own); and when it clears both maps the node goes on answering.
 */
@Tag("broker")
@Tag("cluster")
class ForeignMemberTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static <T> T await(io.vertx.core.Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    /** A Hazelcast member that knows only the node's cluster name and address. */
    static HazelcastInstance foreignMember(HazelcastInstance node) throws Exception {
        Config c = new Config().setClusterName(node.getConfig().getClusterName());
        c.setProperty("hazelcast.phone.home.enabled", "false");
        c.setProperty("hazelcast.wait.seconds.before.join", "0");
        c.getNetworkConfig().setPort(TestPorts.free()).setPortAutoIncrement(false);
        c.getNetworkConfig().getJoin().getMulticastConfig().setEnabled(false);
        c.getNetworkConfig().getJoin().getAutoDetectionConfig().setEnabled(false);
        c.getNetworkConfig().getInterfaces().setEnabled(true).addInterface("127.0.0.1");
        var address = node.getCluster().getLocalMember().getAddress();
        c.getNetworkConfig().getJoin().getTcpIpConfig().setEnabled(true).addMember(address.getHost() + ":" + address.getPort());
        return Hazelcast.newHazelcastInstance(c);
    }

    /**
     * Item 4: a foreign member clears every map of the service (request states, records in flight, visual prompts)
     * again and again while Kafka records are being answered: each record's caption still reaches the output topic
     * exactly once (read committed), none goes to the DLT, and the node stays ready.
     */
    @Test
    void answersInFlightReachKafkaOnceWhenAForeignMemberClearsTheMaps() throws Exception {
        HazelcastInstance foreign = null;
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of("inference.step_delay_ms", "40"))) {
            foreign = foreignMember(h.service.hazelcast());
            byte[] png = Fixtures.image("blip2-opt-tiny", 0);
            // the maps cleared every 25 ms until every answer is in, whatever the check consumer sees (it may join its
            // group after every answer was written); the times kept, to check that clears came while records were in
            // flight. The first clear on a member that has just joined can wait seconds for the partitions to settle, so
            // the records are sent only once the clearing is going.
            java.util.List<Long> clearedAt = new java.util.concurrent.CopyOnWriteArrayList<>();
            java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
            java.util.concurrent.CountDownLatch going = new java.util.concurrent.CountDownLatch(2);
            HazelcastInstance f = foreign;
            Thread clearing = new Thread(() -> {
                while (!stop.get()) {
                    for (String m : java.util.List.of(ClusterBootstrap.REQUESTS_MAP, ClusterBootstrap.RECORDS_IN_FLIGHT_MAP,
                            ClusterBootstrap.VISUAL_PROMPTS_MAP)) {
                        f.getMap(m).clear();
                    }
                    clearedAt.add(System.currentTimeMillis());
                    going.countDown();
                    try {
                        Thread.sleep(25);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            clearing.setDaemon(true);
            clearing.start();
            assertTrue(going.await(60, TimeUnit.SECONDS), "the foreign member clears the maps");
            long sentAt = System.currentTimeMillis();
            java.util.Set<String> ids = new java.util.TreeSet<>();
            for (int i = 0; i < 24; i++) {
                String id = "inflight-" + i;
                ids.add(id);
                String v = new JsonObject().put("id", id).put("task", "caption").put("image", Base64.getEncoder().encodeToString(png))
                        .put("params", new JsonObject().put("max_new_tokens", 16)).encode();
                h.send(new org.apache.kafka.clients.producer.ProducerRecord<>(h.topics().requests(), id, v.getBytes(StandardCharsets.UTF_8)));
            }
            Map<String, Object> cc = new java.util.HashMap<>();
            cc.put("bootstrap.servers", h.service.bootstrapServers());
            cc.put("group.id", "check-" + java.util.UUID.randomUUID());
            cc.put("auto.offset.reset", "earliest");
            cc.put("isolation.level", "read_committed");
            Map<String, Integer> answers = new java.util.TreeMap<>();
            int dead = 0;
            long lastAnswer = 0;
            try (var consumer = new org.apache.kafka.clients.consumer.KafkaConsumer<String, byte[]>(cc,
                    new org.apache.kafka.common.serialization.StringDeserializer(), new org.apache.kafka.common.serialization.ByteArrayDeserializer())) {
                consumer.subscribe(java.util.List.of(h.topics().captions(), h.topics().deadLetter()));
                long end = System.currentTimeMillis() + 120_000;
                long settle = Long.MAX_VALUE;
                while (System.currentTimeMillis() < Math.min(end, settle)) {
                    for (var r : consumer.poll(java.time.Duration.ofMillis(100))) {
                        if (r.topic().equals(h.topics().deadLetter())) {
                            dead++;
                        } else {
                            answers.merge(JSON.readTree(r.value()).path("id").asText(), 1, Integer::sum);
                            lastAnswer = Math.max(lastAnswer, r.timestamp()); // when the service wrote it
                        }
                    }
                    if (settle == Long.MAX_VALUE && answers.keySet().containsAll(ids)) {
                        settle = System.currentTimeMillis() + 3_000; // late duplicates would show by then
                    }
                }
            }
            stop.set(true);
            clearing.join(5000);
            long last = lastAnswer;
            long during = clearedAt.stream().filter(t -> t > sentAt && t < last).count();
            assertTrue(during > 3, "the maps were cleared while records were in flight: " + during + " times between the first record and the last answer");
            assertEquals(ids, answers.keySet(), "every record answered");
            answers.forEach((id, n) -> assertEquals(1, n, id + " answered once"));
            assertEquals(0, dead, "none to the DLT");
            var ready = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(
                    java.net.URI.create("http://127.0.0.1:" + h.service.httpPort() + "/health/ready")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ready.statusCode(), ready.body());
        } finally {
            if (foreign != null) {
                foreign.getLifecycleService().terminate();
            }
        }
    }

    @Test
    void aForeignMemberReadsNothingAndWhatItWritesIsNeverServed() throws Exception {
        Vertx client = Vertx.vertx();
        WebClient web = WebClient.create(client);
        HazelcastInstance foreign = null;
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of("http.follow_timeout_ms", "2000"))) {
            int port = h.service.httpPort();
            byte[] png = Fixtures.image("blip2-opt-tiny", 0);
            JsonObject body = new JsonObject().put("id", "secret-1").put("image", Base64.getEncoder().encodeToString(png))
                    .put("params", new JsonObject().put("max_new_tokens", 6));
            HttpResponse<Buffer> first = await(web.post(port, "127.0.0.1", "/v1/caption").sendJsonObject(body));
            assertEquals(200, first.statusCode(), first.bodyAsString());
            JsonNode result = JSON.readTree(first.bodyAsString());

            // the foreign member: the node's cluster name and address, nothing else
            HazelcastInstance node = h.service.hazelcast();
            foreign = foreignMember(node);
            assertEquals(2, node.getCluster().getMembers().size(), "it joins: the open-source edition cannot refuse it");

            // a Hazelcast client, too, with nothing but the name and address: it reads only sealed values
            var clientConfig = new com.hazelcast.client.config.ClientConfig().setClusterName(node.getConfig().getClusterName());
            clientConfig.setProperty("hazelcast.phone.home.enabled", "false");
            var a = node.getCluster().getLocalMember().getAddress();
            clientConfig.getNetworkConfig().addAddress(a.getHost() + ":" + a.getPort());
            HazelcastInstance hzClient = com.hazelcast.client.HazelcastClient.newHazelcastClient(clientConfig);
            try {
                String seen = (String) hzClient.getMap(ClusterBootstrap.REQUESTS_MAP).get("secret-1");
                assertTrue(seen != null && seen.startsWith("s1.") && !seen.contains(result.path("text").asText()),
                        "a client reads the state sealed: " + seen);
                hzClient.getMap(ClusterBootstrap.REQUESTS_MAP).put("forged-by-client",
                        "{\"status\":\"done\",\"task\":\"caption\",\"result\":{\"text\":\"FORGED BY A FOREIGN CLIENT\"}}");
                HttpResponse<Buffer> r = await(web.get(port, "127.0.0.1", "/v1/requests/forged-by-client").send());
                assertEquals(404, r.statusCode(), r.bodyAsString());
                hzClient.getMap(ClusterBootstrap.REQUESTS_MAP).delete("forged-by-client");
            } finally {
                hzClient.shutdown();
            }

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
            assertTrue(h.service.metrics().scrape().contains("blip2_cluster_rejected_values_total 3.0"), "counted (the client's too)");
            // nor to a WebSocket follower (which hears a request's events, never the map): not_found after the follow timeout
            try (WsClient ws = WsClient.connect(client, port, "/v1/stream", null, null, null)) {
                for (String id : new String[] {"forged-1", "forged-2"}) {
                    ws.send(Map.of("type", "follow", "id", id));
                    WsClient.Frame f = ws.next(x -> id.equals(x.id()), 15_000);
                    assertEquals("error", f.type(), id + ": " + f.json());
                    assertEquals("not_found", f.json().get("code").asText(), id + ": " + f.json());
                    assertFalse(f.json().toString().contains("FORGED"));
                }
            }

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
