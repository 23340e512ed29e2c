package io.blip2stream.service;

import io.blip2stream.TestCerts;
import io.blip2stream.TestPorts;
import io.blip2stream.cluster.ClusterBootstrap;
import io.blip2stream.cluster.ClusterTls;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.bus.Addresses;
import io.blip2stream.service.bus.RequestEvent;
import io.blip2stream.service.bus.TokenEvent;
import io.blip2stream.service.config.ConfigLoader;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.eventbus.EventBusOptions;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import io.vertx.spi.cluster.hazelcast.HazelcastClusterManager;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, item 2, with a real node whose event bus speaks mutual TLS (cluster.tls_dir) and real peers that join
 * its Hazelcast cluster knowing its name and address, as the attacker did: a peer with a certificate of the
 * cluster's CA sees the request events and tokens of another client's HTTP request and can publish to the node; a
 * peer without a certificate, and one whose certificate another CA signed (with the same CN), see nothing and
 * publish nothing the node receives; nor does a peer whose server takes anyone (the node, as a client, checks the
 * server's certificate too). At the socket: a plain TCP client, a TLS client without a certificate and one
 * with the other CA's are cut off at the handshake; one with the cluster's certificate is let in.
 */
@Tag("broker")
@Tag("cluster")
class EventBusTlsTest {
    @TempDir
    Path tmp;

    static <T> T await(Future<T> f) throws Exception {
        return f.toCompletionStage().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    /** A clustered Vert.x joined to the node's Hazelcast, its event bus with {@code tlsDir}'s certificate or none. */
    record Peer(String name, Vertx vertx, List<TokenEvent> tokens, List<RequestEvent> events) {}

    static Peer peer(String name, String clusterName, String member, Path tlsDir) throws Exception {
        return peer(name, clusterName, member, tlsDir, false);
    }

    /**
     * {@code careless}: its event bus server takes any client and its client trusts any server: what it receives shows
     * whether the node, as a client, checks the server's certificate against the cluster's CA.
     */
    static Peer peer(String name, String clusterName, String member, Path tlsDir, boolean careless) throws Exception {
        var config = ConfigLoader.load(null, Map.of(), Map.of("cluster.name", clusterName, "cluster.port", String.valueOf(TestPorts.free()),
                "cluster.members", member, "cluster.insecure", "true"));
        EventBusOptions bus = new EventBusOptions().setHost("127.0.0.1").setPort(0).setClusterPublicHost("127.0.0.1");
        if (tlsDir != null) {
            ClusterTls.load(tlsDir).applyTo(bus);
        }
        if (careless) {
            bus.setClientAuth(io.vertx.core.http.ClientAuth.NONE).setTrustAll(true).setTrustOptions(null);
        }
        Vertx v = await(Vertx.builder().with(new VertxOptions().setEventBusOptions(bus))
                .withClusterManager(new HazelcastClusterManager(ClusterBootstrap.hazelcastConfig(config.cluster()))).buildClustered());
        Addresses.registerCodecs(v);
        List<TokenEvent> tokens = new CopyOnWriteArrayList<>();
        List<RequestEvent> events = new CopyOnWriteArrayList<>();
        await(v.eventBus().consumer(Addresses.REQUEST_EVENTS, m -> {
            if (m.body() instanceof TokenEvent t) {
                tokens.add(t);
            } else if (m.body() instanceof RequestEvent e) {
                events.add(e);
            }
        }).completion());
        return new Peer(name, v, tokens, events);
    }

    @Test
    void onlyPeersWithTheClustersCertificateReachTheEventBus() throws Exception {
        int eventBusPort = TestPorts.free();
        Vertx client = Vertx.vertx();
        WebClient web = WebClient.create(client);
        List<Peer> peers = new ArrayList<>();
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of("cluster.tls_dir", TestCerts.node(1).toString(),
                "cluster.event_bus_port", String.valueOf(eventBusPort), "http.follow_timeout_ms", "4000"))) {
            var hz = h.service.hazelcast();
            var address = hz.getCluster().getLocalMember().getAddress();
            String member = address.getHost() + ":" + address.getPort();
            String name = hz.getConfig().getClusterName();
            Peer legit = peer("member", name, member, TestCerts.node(2));
            Peer plain = peer("plain", name, member, null);
            Peer rogue = peer("rogue", name, member, TestCerts.rogue());
            Peer careless = peer("careless", name, member, TestCerts.rogue(), true);
            peers.addAll(List.of(legit, plain, rogue, careless));
            assertEquals(5, hz.getCluster().getMembers().size(), "all four join Hazelcast: the open-source edition cannot refuse them");

            // what the node receives from its peers
            List<String> received = new CopyOnWriteArrayList<>();
            await(h.service.vertx().eventBus().<RequestEvent>consumer(Addresses.REQUEST_EVENTS, m -> received.add(m.body().id())).completion());

            JsonObject body = new JsonObject().put("id", "eb-secret").put("params", new JsonObject().put("max_new_tokens", 6))
                    .put("image", Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0)));
            HttpResponse<Buffer> r = await(web.post(h.service.httpPort(), "127.0.0.1", "/v1/caption").sendJsonObject(body));
            assertEquals(200, r.statusCode(), r.bodyAsString());

            long end = System.currentTimeMillis() + 30_000;
            while (legit.events().stream().noneMatch(e -> e.id().equals("eb-secret") && e.status().finished())
                    && System.currentTimeMillis() < end) {
                Thread.sleep(50);
            }
            assertTrue(legit.events().stream().anyMatch(e -> e.id().equals("eb-secret") && e.status() == RequestEvent.Status.DONE),
                    "a peer with the cluster's certificate sees the request's events: " + legit.events());
            assertTrue(legit.tokens().stream().anyMatch(t -> t.id().equals("eb-secret")), "and its tokens");

            // each peer forges a result for a request of its own name, which a WebSocket client of the node follows
            WsClient follower = WsClient.connect(client, h.service.httpPort(), "/v1/stream", null, null, null);
            for (Peer p : peers) {
                follower.send(Map.of("type", "follow", "id", "forged-by-" + p.name()));
            }
            Thread.sleep(300); // followed before the forgeries are published
            for (Peer p : peers) {
                var result = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode()
                        .put("id", "forged-by-" + p.name()).put("text", "FORGED BY " + p.name());
                p.vertx().eventBus().publish(Addresses.REQUEST_EVENTS, new RequestEvent("forged-by-" + p.name(),
                        RequestEvent.Status.DONE, "caption", "http", result, null, null, null));
            }
            WsClient.Frame served = follower.next(f -> "forged-by-member".equals(f.id()), 15_000);
            assertEquals("done", served.type(), "a peer with the cluster's certificate is trusted: " + served.json());
            for (Peer p : List.of(plain, rogue, careless)) {
                WsClient.Frame f = follower.next(x -> ("forged-by-" + p.name()).equals(x.id()), 15_000);
                assertEquals("error", f.type(), p.name() + "'s forgery is not served to a follower: " + f.json());
                assertEquals("not_found", f.json().get("code").asText());
            }
            follower.close();
            end = System.currentTimeMillis() + 30_000;
            while (!received.contains("forged-by-member") && System.currentTimeMillis() < end) {
                Thread.sleep(50);
            }
            Thread.sleep(2_000); // time for anything else to arrive
            assertTrue(received.contains("forged-by-member"), "a peer with the cluster's certificate reaches the node: " + received);
            for (Peer p : List.of(plain, rogue, careless)) {
                // (forgeries the foreign peers exchange among themselves are theirs: what matters is the node's own)
                List<RequestEvent> fromOthers = p.events().stream().filter(e -> !e.id().startsWith("forged-by-")).toList();
                assertTrue(fromOthers.isEmpty() && p.tokens().isEmpty(), p.name() + " sees nothing: " + fromOthers + " " + p.tokens());
                assertTrue(!received.contains("forged-by-" + p.name()), p.name() + " reaches nothing: " + received);
            }

            // at the socket
            Path ca = TestCerts.node(1).resolve(ClusterTls.CA);
            assertTrue(cutOff(eventBusPort, null, null), "plain TCP is cut off");
            assertTrue(cutOff(eventBusPort, ca, null), "TLS without a certificate is cut off at the handshake");
            assertTrue(cutOff(eventBusPort, ca, TestCerts.rogue()), "TLS with another CA's certificate is cut off");
            assertTrue(!cutOff(eventBusPort, ca, TestCerts.node(3)), "TLS with the cluster's certificate is let in");

            // and the node still answers
            HttpResponse<Buffer> again = await(web.post(h.service.httpPort(), "127.0.0.1", "/v1/caption")
                    .sendJsonObject(body.copy().put("id", "eb-after")));
            assertEquals(200, again.statusCode(), again.bodyAsString());
        } finally {
            for (Peer p : peers) {
                p.vertx().close().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
            }
            web.close();
            client.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }

    /**
     * Whether a connection to the event bus port is ended by the node within a few seconds without a byte from it:
     * plain TCP ({@code ca} null, a line of text sent), or TLS 1.3 trusting {@code ca} with {@code certDir}'s
     * certificate or none (with TLS 1.3 the server refuses a client's certificate after the client's side of the
     * handshake is done: the refusal arrives as an alert on the first read).
     */
    static boolean cutOff(int port, Path ca, Path certDir) throws Exception {
        java.net.Socket s;
        if (ca == null) {
            s = new java.net.Socket("127.0.0.1", port);
            s.getOutputStream().write("hello event bus\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        } else {
            javax.net.ssl.SSLSocket t = (javax.net.ssl.SSLSocket) tlsContext(ca, certDir).getSocketFactory().createSocket("127.0.0.1", port);
            t.setEnabledProtocols(new String[] {"TLSv1.3"});
            t.setSoTimeout(4_000);
            try {
                t.startHandshake();
            } catch (java.io.IOException e) {
                t.close();
                return true;
            }
            s = t;
        }
        try (s) {
            s.setSoTimeout(4_000);
            int b = s.getInputStream().read();
            assertEquals(-1, b, "no byte from the node");
            return true;
        } catch (java.net.SocketTimeoutException e) {
            return false; // still open: let in
        } catch (javax.net.ssl.SSLException | java.net.SocketException e) {
            return true; // the refusal (certificate_required, bad_certificate) or a reset
        }
    }

    /** A JDK TLS context trusting {@code ca}, presenting {@code certDir}'s certificate when given. */
    static javax.net.ssl.SSLContext tlsContext(Path ca, Path certDir) throws Exception {
        var cf = java.security.cert.CertificateFactory.getInstance("X.509");
        java.security.KeyStore trust = java.security.KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        try (var in = java.nio.file.Files.newInputStream(ca)) {
            trust.setCertificateEntry("ca", cf.generateCertificate(in));
        }
        var tmf = javax.net.ssl.TrustManagerFactory.getInstance(javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        javax.net.ssl.KeyManager[] km = null;
        if (certDir != null) {
            String pem = java.nio.file.Files.readString(certDir.resolve(ClusterTls.KEY));
            byte[] der = Base64.getMimeDecoder().decode(pem.replaceAll("-----[A-Z ]+-----", ""));
            var key = java.security.KeyFactory.getInstance("EC").generatePrivate(new java.security.spec.PKCS8EncodedKeySpec(der));
            java.security.cert.Certificate cert;
            try (var in = java.nio.file.Files.newInputStream(certDir.resolve(ClusterTls.CERT))) {
                cert = cf.generateCertificate(in);
            }
            java.security.KeyStore keys = java.security.KeyStore.getInstance("PKCS12");
            keys.load(null, null);
            keys.setKeyEntry("node", key, "x".toCharArray(), new java.security.cert.Certificate[] {cert});
            var kmf = javax.net.ssl.KeyManagerFactory.getInstance(javax.net.ssl.KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, "x".toCharArray());
            km = kmf.getKeyManagers();
        }
        javax.net.ssl.SSLContext ctx = javax.net.ssl.SSLContext.getInstance("TLSv1.3");
        ctx.init(km, tmf.getTrustManagers(), null);
        return ctx;
    }
}
