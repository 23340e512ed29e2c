package io.blip2stream.service;

import io.blip2stream.cluster.ClusterCertificates;
import io.blip2stream.cluster.ClusterTls;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.config.ConfigLoader;
import io.vertx.core.Vertx;
import io.vertx.core.http.WebSocket;
import io.vertx.core.http.WebSocketClient;
import io.vertx.core.http.WebSocketClientOptions;
import io.vertx.core.http.WebSocketConnectOptions;
import io.vertx.core.json.JsonObject;
import io.vertx.core.net.PemTrustOptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, item 6: HTTP over TLS with a PEM certificate and key (http.tls_cert_file, http.tls_key_file). A real
 * HTTPS client that trusts only the certificate's CA and checks the host name gets the health, a caption and the
 * page; a wss:// client streams a caption; plain HTTP on that port gets no answer; half a setting is refused.
 */
@Tag("broker")
class HttpsTest {
    @TempDir
    Path tmp;

    @Test
    void httpsAndWssWithAPemCertificate() throws Exception {
        Path certs = ClusterCertificates.make(tmp.resolve("certs"), List.of("localhost"), 30).made().get(0);
        Map<String, String> o = Map.of("http.tls_cert_file", certs.resolve(ClusterTls.CERT).toString(),
                "http.tls_key_file", certs.resolve(ClusterTls.KEY).toString());
        Vertx vertx = Vertx.vertx();
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), o)) {
            int port = h.service.httpPort();
            HttpClient https = HttpClient.newBuilder()
                    .sslContext(EventBusTlsTest.tlsContext(certs.resolve(ClusterTls.CA), null)).build();
            HttpResponse<String> live = https.send(HttpRequest.newBuilder(URI.create("https://localhost:" + port + "/health/live")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, live.statusCode(), live.body());
            assertEquals(HttpClient.Version.HTTP_1_1, live.version());
            String image = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));
            HttpResponse<String> caption = https.send(HttpRequest.newBuilder(URI.create("https://localhost:" + port + "/v1/caption"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(new JsonObject().put("image", image)
                            .put("params", new JsonObject().put("max_new_tokens", 4)).encode())).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, caption.statusCode(), caption.body());
            String text = new JsonObject(caption.body()).getString("text");
            assertTrue(text != null && !text.isEmpty(), caption.body());
            HttpResponse<String> page = https.send(HttpRequest.newBuilder(URI.create("https://localhost:" + port + "/")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, page.statusCode());

            // wss://
            WebSocketClient ws = vertx.createWebSocketClient(new WebSocketClientOptions().setSsl(true)
                    .setTrustOptions(new PemTrustOptions().addCertPath(certs.resolve(ClusterTls.CA).toString())));
            WebSocket socket = ws.connect(new WebSocketConnectOptions().setHost("localhost").setPort(port).setURI("/v1/stream"))
                    .toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
            CompletableFuture<JsonObject> done = new CompletableFuture<>();
            socket.textMessageHandler(m -> {
                JsonObject j = new JsonObject(m);
                if ("done".equals(j.getString("type")) || "error".equals(j.getString("type"))) {
                    done.complete(j);
                }
            });
            socket.writeTextMessage(new JsonObject().put("type", "generate").put("task", "caption").put("image", image)
                    .put("params", new JsonObject().put("max_new_tokens", 4)).encode());
            JsonObject streamed = done.get(60, TimeUnit.SECONDS);
            assertEquals("done", streamed.getString("type"), streamed.encode());
            assertEquals(text, streamed.getString("text"), "the same caption over wss://");
            socket.close();

            // plain HTTP on the TLS port: no answer
            HttpClient plain = HttpClient.newBuilder().connectTimeout(java.time.Duration.ofSeconds(5)).build();
            assertThrows(java.io.IOException.class, () -> plain.send(HttpRequest.newBuilder(URI.create("http://localhost:" + port + "/health/live"))
                    .timeout(java.time.Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString()));
        } finally {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void halfATlsSettingIsRefused() {
        var e = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null,
                Map.of("BLIP2_HTTP_TLS_CERT_FILE", "/etc/hosts"), Map.of()));
        assertTrue(e.getMessage().contains("go together"), e.getMessage());
        var missing = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null,
                Map.of("BLIP2_HTTP_TLS_CERT_FILE", "/nonexistent/cert.pem", "BLIP2_HTTP_TLS_KEY_FILE", "/nonexistent/key.pem"), Map.of()));
        assertTrue(missing.getMessage().contains("/nonexistent/cert.pem"), missing.getMessage());
    }
}
