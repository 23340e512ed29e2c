package io.blip2stream.service;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.model.Fixtures;
import io.vertx.core.Vertx;
import io.vertx.core.http.WebSocketClientOptions;
import io.vertx.core.http.WebSocketFrame;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 19, item 6, with raw sockets where a client library would not misbehave on purpose: a body that never
 * ends gets 408 and leaves nothing on disk; headers that trickle (or never come) lose their connection; the Host
 * and Origin of a DNS-rebinding page are refused on an open service; a WebSocket frame over the limit is closed
 * with 1009; and after all of it, a normal request is answered.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HttpHygieneTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    ServiceHarness harness;
    int port;
    byte[] png;
    Path data;

    @BeforeAll
    void start() throws Exception {
        data = tmp.resolve("data");
        Files.createDirectories(data.resolve("uploads"));
        Files.writeString(data.resolve("uploads").resolve("left-by-an-older-version"), "partial");
        harness = new ServiceHarness(data, Map.of("http.header_timeout_ms", "1000", "http.body_timeout_ms", "1500",
                "http.max_frame_bytes", "65536", "http.allowed_hosts", "blip2.test"));
        port = harness.service.httpPort();
        png = Fixtures.image("blip2-opt-tiny", 0);
    }

    @AfterAll
    void stop() {
        harness.close();
    }

    /** What came back on a raw socket until the server closed it (or the timeout). */
    record Reply(String text, boolean closed, long ms) {
        int status() {
            return text.startsWith("HTTP/1.1 ") ? Integer.parseInt(text.substring(9, 12)) : -1;
        }
    }

    static Reply read(Socket s, long timeoutMs) throws IOException {
        long t0 = System.nanoTime();
        s.setSoTimeout((int) timeoutMs);
        InputStream in = s.getInputStream();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        boolean closed = false;
        try {
            int n;
            while ((n = in.read(buf)) >= 0) {
                out.write(buf, 0, n);
            }
            closed = true;
        } catch (SocketTimeoutException e) {
            // still open
        } catch (IOException e) {
            closed = true; // reset
        }
        return new Reply(out.toString(StandardCharsets.UTF_8), closed, (System.nanoTime() - t0) / 1_000_000);
    }

    Reply send(String head, byte[] body, long timeoutMs) throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            OutputStream o = s.getOutputStream();
            o.write(head.getBytes(StandardCharsets.ISO_8859_1));
            if (body != null) {
                o.write(body);
            }
            o.flush();
            return read(s, timeoutMs);
        }
    }

    @Test
    void aBodyThatNeverEndsGets408AndLeavesNothingOnDisk() throws Exception {
        assertFalse(Files.exists(data.resolve("uploads")), "stale uploads removed at start");
        String boundary = "XyZ";
        byte[] part = ("--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                + "Content-Type: image/png\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1);
        byte[] body = new byte[part.length + png.length];
        System.arraycopy(part, 0, body, 0, part.length);
        System.arraycopy(png, 0, body, part.length, png.length);
        // Content-Length says there is more (the closing boundary) than is sent
        String head = "POST /v1/caption HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nContent-Type: multipart/form-data; boundary="
                + boundary + "\r\nContent-Length: " + (body.length + 100) + "\r\n\r\n";
        Reply r = send(head, body, 10_000);
        assertEquals(408, r.status(), r.text());
        assertTrue(r.text().contains("request_timeout"), r.text());
        assertTrue(r.closed(), "the connection is closed");
        assertTrue(r.ms() >= 1000 && r.ms() < 6000, "after the body timeout: " + r.ms());
        assertFalse(Files.exists(data.resolve("uploads")), "nothing on disk");
        // a body cut off mid-stream: the client goes away
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.getOutputStream().write(head.getBytes(StandardCharsets.ISO_8859_1));
            s.getOutputStream().write(body, 0, body.length / 2);
            s.getOutputStream().flush();
        }
        normalRequestIsAnswered();
    }

    @Test
    void headersThatTrickleOrNeverComeLoseTheirConnection() throws Exception {
        try (Socket silent = new Socket("127.0.0.1", port); Socket slow = new Socket("127.0.0.1", port)) {
            slow.getOutputStream().write("GET /health/live HTTP/1.1\r\nHo".getBytes(StandardCharsets.ISO_8859_1));
            long t0 = System.nanoTime();
            for (int i = 0; i < 4; i++) { // a byte every 400 ms: never silent for long, never done
                Thread.sleep(400);
                try {
                    slow.getOutputStream().write('x');
                } catch (IOException e) {
                    break; // closed already
                }
            }
            Reply a = read(silent, 5000);
            Reply b = read(slow, 5000);
            assertTrue(a.closed(), "a connection that sends nothing is closed");
            assertTrue(b.closed(), "a connection that trickles its headers is closed");
            assertTrue((System.nanoTime() - t0) / 1_000_000 < 5000);
        }
        // a kept-alive connection answers its request, then must send the next one's headers in time
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.getOutputStream().write(("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
            Reply r = read(s, 4000);
            assertEquals(200, r.status(), r.text());
            assertTrue(r.closed(), "idle after its response for longer than the header timeout: closed");
        }
    }

    @Test
    void aDnsRebindingPageIsRefusedAndThePagesOwnOriginIsNot() throws Exception {
        String id = "no-such-request";
        Reply rebound = send("GET /v1/requests/" + id + " HTTP/1.1\r\nHost: evil.example:" + port + "\r\nConnection: close\r\n\r\n", null, 5000);
        assertEquals(421, rebound.status(), "an open service answers only its own hosts: " + rebound.text());
        Reply crossOrigin = send("GET /v1/requests/" + id + " HTTP/1.1\r\nHost: evil.example:" + port + "\r\nOrigin: http://evil.example:"
                + port + "\r\nConnection: close\r\n\r\n", null, 5000);
        assertEquals(403, crossOrigin.status(), "an Origin equal to a foreign Host is not the page's own: " + crossOrigin.text());
        Reply otherPort = send("GET /v1/requests/" + id + " HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nOrigin: http://127.0.0.1:1"
                + "\r\nConnection: close\r\n\r\n", null, 5000);
        assertEquals(403, otherPort.status(), otherPort.text());
        for (String host : new String[] {"127.0.0.1:" + port, "localhost:" + port, "blip2.test:" + port, "[::1]:" + port}) {
            Reply own = send("GET /v1/requests/" + id + " HTTP/1.1\r\nHost: " + host + "\r\nOrigin: http://" + host
                    + "\r\nConnection: close\r\n\r\n", null, 5000);
            assertEquals(404, own.status(), host + ": the page's own origin passes (and the id is unknown): " + own.text());
        }
    }

    @Test
    void aWebSocketFrameOverTheLimitIsClosedWith1009() throws Exception {
        Vertx vertx = Vertx.vertx();
        try (WsClient c = WsClient.connect(vertx, port, "/v1/stream",
                new WebSocketClientOptions().setMaxFrameSize(1 << 20).setMaxMessageSize(1 << 20), null, null)) {
            String big = "{\"type\":\"generate\",\"task\":\"caption\",\"image\":\"" + "A".repeat(100_000) + "\"}";
            c.ws.writeFrame(WebSocketFrame.textFrame(big, true)); // one frame of 100 kB against a limit of 64 KiB
            short status = c.closed.get(10, TimeUnit.SECONDS);
            assertEquals(1009, status);
        } finally {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
        normalRequestIsAnswered();
    }

    void normalRequestIsAnswered() throws Exception {
        String json = "{\"image\":\"" + Base64.getEncoder().encodeToString(png) + "\",\"params\":{\"max_new_tokens\":3}}";
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        Reply ok = send("POST /v1/caption HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nContent-Type: application/json\r\nContent-Length: "
                + body.length + "\r\nConnection: close\r\n\r\n", body, 30_000);
        assertEquals(200, ok.status(), ok.text());
        String payload = ok.text().substring(ok.text().indexOf("\r\n\r\n") + 4);
        assertEquals(3, JSON.readTree(payload).path("token_ids").size(), payload);
        assertFalse(Files.exists(data.resolve("uploads")));
        assertTrue(harness.blockedEventLoops.isEmpty(), harness.blockedEventLoops.toString());
    }
}
