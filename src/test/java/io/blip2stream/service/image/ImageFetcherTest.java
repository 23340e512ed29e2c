package io.blip2stream.service.image;

import io.blip2stream.engine.RequestError;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.config.ServiceConfig;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.net.SelfSignedCertificate;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Images by reference against a real HTTP server on this machine: what is fetched, and each refusal with its code
 * and reason. Host names are resolved by the test's own resolver (names the system cannot resolve), so a fetch that
 * succeeds proves the connection went to the address the fetcher checked, not to a second lookup.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ImageFetcherTest {
    @TempDir
    static Path tmp;

    Vertx vertx;
    HttpServer server;
    HttpServer tlsServer;
    int port;
    int tlsPort;
    final byte[] png = Fixtures.image("blip2-opt-tiny", 0);
    final AtomicInteger hits = new AtomicInteger();
    /** Host name to the addresses the test's resolver gives (one lookup each, counted). */
    final Map<String, InetAddress[]> dns = new ConcurrentHashMap<>();
    final Map<String, AtomicInteger> lookups = new ConcurrentHashMap<>();

    @BeforeAll
    void start() throws Exception {
        vertx = Vertx.vertx();
        server = vertx.createHttpServer().requestHandler(req -> {
            hits.incrementAndGet();
            String path = req.path();
            switch (path) {
                case "/cat.png" -> req.response().putHeader("content-type", "image/png").end(Buffer.buffer(png));
                case "/big" -> req.response().putHeader("content-length", String.valueOf(5_000_000)).write(Buffer.buffer(new byte[1000]));
                case "/big-chunked" -> {
                    req.response().setChunked(true);
                    for (int i = 0; i < 40; i++) {
                        req.response().write(Buffer.buffer(new byte[1000]));
                    }
                    req.response().end();
                }
                case "/slow" -> req.response().setChunked(true).write("x"); // never ends
                case "/page.html" -> req.response().putHeader("content-type", "text/html").end("<html>not an image</html>");
                case "/missing" -> req.response().setStatusCode(404).end();
                case "/redirect-in" -> req.response().setStatusCode(302).putHeader("location", "/cat.png").end();
                case "/redirect-out" -> req.response().setStatusCode(302).putHeader("location", "http://elsewhere.test:" + port + "/cat.png").end();
                case "/redirect-private" -> req.response().setStatusCode(301).putHeader("location", "http://metadata.test:" + port + "/cat.png").end();
                case "/redirect-loop" -> req.response().setStatusCode(302).putHeader("location", "/redirect-loop").end();
                default -> req.response().setStatusCode(500).end();
            }
        });
        server.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        port = server.actualPort();
        SelfSignedCertificate cert = SelfSignedCertificate.create("images.test");
        tlsServer = vertx.createHttpServer(new HttpServerOptions().setSsl(true).setKeyCertOptions(cert.keyCertOptions()))
                .requestHandler(req -> req.response().end(Buffer.buffer(png)));
        tlsServer.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        tlsPort = tlsServer.actualPort();
        InetAddress loopback = InetAddress.getByName("127.0.0.1");
        dns.put("images.test", new InetAddress[] {loopback});
        dns.put("elsewhere.test", new InetAddress[] {loopback});
        dns.put("metadata.test", new InetAddress[] {InetAddress.getByName("169.254.169.254")});
        // one public address and one private: refused, whichever the connection would take
        dns.put("mixed.test", new InetAddress[] {InetAddress.getByName("93.184.216.34"), InetAddress.getByName("10.0.0.5")});
    }

    @AfterAll
    void stop() {
        vertx.close();
    }

    private ImageFetcher fetcher(List<String> hosts, boolean http, boolean privateOk, long timeoutMs, String fileRoot) {
        ServiceConfig.Images rules = new ServiceConfig.Images(hosts, http, privateOk, timeoutMs, 3, fileRoot);
        return new ImageFetcher(vertx, rules, 30_000, host -> {
            lookups.computeIfAbsent(host, h -> new AtomicInteger()).incrementAndGet();
            InetAddress[] a = dns.get(host);
            if (a == null) {
                throw new UnknownHostException(host);
            }
            return a;
        });
    }

    /** Allows images.test and elsewhere-free rules as an internal object store would: http, private addresses. */
    private ImageFetcher internal() {
        return fetcher(List.of("images.test", "metadata.test"), true, true, 3000, "");
    }

    private byte[] fetch(ImageFetcher f, String url) throws Exception {
        return f.fetch(url).toCompletionStage().toCompletableFuture().get(20, TimeUnit.SECONDS);
    }

    private RequestError refused(ImageFetcher f, String url) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> fetch(f, url), url + " is refused");
        assertTrue(e.getCause() instanceof RequestError, "a RequestError, not " + e.getCause());
        return (RequestError) e.getCause();
    }

    @Test
    void anAllowedImageIsFetchedFromTheAddressCheckedNotFromASecondLookup() throws Exception {
        try (ImageFetcher f = internal()) {
            int before = lookups.getOrDefault("images.test", new AtomicInteger()).get();
            assertArrayEquals(png, fetch(f, "http://images.test:" + port + "/cat.png?X-Amz-Signature=secret"));
            // the system cannot resolve images.test: the connection went where the resolver said, once
            assertEquals(before + 1, lookups.get("images.test").get());
        }
    }

    @Test
    void aRedirectWithinTheListIsFollowedAndEachHopChecked() throws Exception {
        try (ImageFetcher f = internal()) {
            assertArrayEquals(png, fetch(f, "http://images.test:" + port + "/redirect-in"));
            RequestError out = refused(f, "http://images.test:" + port + "/redirect-out");
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, out.code());
            assertTrue(out.getMessage().contains("redirected to the host 'elsewhere.test'"), out.getMessage());
            RequestError loop = refused(f, "http://images.test:" + port + "/redirect-loop");
            assertEquals(RequestError.IMAGE_FETCH_FAILED, loop.code());
            assertTrue(loop.getMessage().contains("more than 3 times"), loop.getMessage());
        }
        try (ImageFetcher f = fetcher(List.of("images.test", "metadata.test"), true, false, 3000, "")) {
            // the first hop is private too here, so use a rule set where only the redirect's target is checked: the
            // link-local target of a redirect is refused as the first URL's would be
            RequestError r = refused(f, "http://metadata.test:" + port + "/cat.png");
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, r.code());
            assertTrue(r.getMessage().contains("has no address images may be fetched from"), r.getMessage());
            assertFalse(r.getMessage().contains("169.254"), "the address is in the log, not the client's answer: " + r.getMessage());
        }
    }

    @Test
    void privateLoopbackAndMixedAddressesAreRefusedUnlessAllowed() {
        try (ImageFetcher f = fetcher(List.of("*"), true, false, 3000, "")) {
            int before = hits.get();
            RequestError loop = refused(f, "http://images.test:" + port + "/cat.png");
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, loop.code());
            assertTrue(loop.getMessage().contains("images.allow_private_addresses"), loop.getMessage());
            RequestError mixed = refused(f, "http://mixed.test:" + port + "/cat.png");
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, mixed.code(), "one private address among public ones: refused");
            // an unknown name and a private one read alike to the client: no map of the service's own network
            RequestError unknown = refused(f, "http://unknown.test/cat.png");
            assertEquals(loop.code(), unknown.code());
            for (RequestError e : List.of(loop, mixed, unknown)) {
                assertTrue(e.getMessage().contains("has no address images may be fetched from (it is not known, or not public"), e.getMessage());
                assertFalse(e.getMessage().contains("127.0.0.1") || e.getMessage().contains("10.0.0.5"), e.getMessage());
            }
            for (String literal : new String[] {"http://127.0.0.1:" + port + "/cat.png", "http://[::1]:" + port + "/cat.png",
                    "http://[::ffff:127.0.0.1]:" + port + "/cat.png", "http://169.254.169.254/latest/meta-data/"}) {
                assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, literal).code(), literal);
            }
            assertEquals(before, hits.get(), "nothing refused reached the server");
        }
    }

    @Test
    void hostsOutsideTheListSchemesAndUserInfoAreRefused() {
        try (ImageFetcher f = fetcher(List.of("*.example.com", "images.test"), false, true, 3000, "")) {
            RequestError host = refused(f, "https://evil.test/cat.png");
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, host.code());
            assertTrue(host.getMessage().contains("'evil.test', which is not in images.allowed_hosts"), host.getMessage());
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, "https://example.com.evil.test/x.png").code());
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, "https://notexample.com/x.png").code());
            RequestError http = refused(f, "http://images.test:" + port + "/cat.png");
            assertTrue(http.getMessage().contains("images.allow_http"), http.getMessage());
            for (String u : new String[] {"ftp://images.test/cat.png", "gopher://images.test/", "jar:file:/x!/y",
                    "https://user:pw@images.test/cat.png", "file:///etc/passwd"}) {
                assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, u).code(), u);
            }
            assertEquals(RequestError.INVALID_IMAGE, refused(f, "https:// bad url").code());
            assertEquals(RequestError.INVALID_IMAGE, refused(f, "").code());
        }
        try (ImageFetcher f = fetcher(List.of(), true, true, 3000, "")) {
            RequestError off = refused(f, "https://images.test/cat.png");
            assertTrue(off.getMessage().contains("empty: images by URL are off"), off.getMessage());
        }
    }

    @Test
    void tooLargeTooSlowMissingAndUnknownAreRefusedWithTheirReason() throws Exception {
        try (ImageFetcher f = fetcher(List.of("images.test", "nowhere.test"), true, true, 1500, "")) {
            RequestError declared = refused(f, "http://images.test:" + port + "/big");
            assertEquals(RequestError.IMAGE_TOO_LARGE, declared.code());
            assertTrue(declared.getMessage().contains("5000000"), declared.getMessage());
            assertEquals(RequestError.IMAGE_TOO_LARGE, refused(f, "http://images.test:" + port + "/big-chunked").code());
            long t0 = System.nanoTime();
            RequestError slow = refused(f, "http://images.test:" + port + "/slow");
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertEquals(RequestError.IMAGE_FETCH_TIMEOUT, slow.code());
            assertTrue(ms >= 1400 && ms < 8000, "cut off at the timeout, after " + ms + " ms");
            RequestError missing = refused(f, "http://images.test:" + port + "/missing?token=secret");
            assertEquals(RequestError.IMAGE_FETCH_FAILED, missing.code());
            assertTrue(missing.getMessage().contains("answered 404"), missing.getMessage());
            assertFalse(missing.getMessage().contains("secret"), "the query (a presigned URL's signature) is not shown: " + missing.getMessage());
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, "http://nowhere.test/cat.png").code());
            // an HTML page is fetched (the decoder refuses it as it refuses inline bytes that are not an image)
            assertArrayEquals("<html>not an image</html>".getBytes(), fetch(f, "http://images.test:" + port + "/page.html"));
        }
    }

    @Test
    void tlsIsVerifiedAgainstTheHostName() {
        try (ImageFetcher f = fetcher(List.of("images.test"), false, true, 3000, "")) {
            // a certificate no trusted CA signed: refused, not fetched
            RequestError e = refused(f, "https://images.test:" + tlsPort + "/cat.png");
            assertEquals(RequestError.IMAGE_FETCH_FAILED, e.code(), e.getMessage());
            assertTrue(e.getMessage().contains("certification path") || e.getMessage().contains("PKIX"), e.getMessage());
        }
    }

    @Test
    void fileUrlsAreReadUnderTheRootOnly() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("shared"));
        Files.write(root.resolve("cat.png"), png);
        Path outside = Files.write(tmp.resolve("secret.png"), png);
        Files.createSymbolicLink(root.resolve("link.png"), outside);
        Files.createDirectories(root.resolve("dir"));
        try (ImageFetcher f = fetcher(List.of(), false, false, 3000, root.toString())) {
            assertArrayEquals(png, fetch(f, root.resolve("cat.png").toUri().toString()));
            assertArrayEquals(png, fetch(f, "file://" + root.resolve("cat.png")));
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, outside.toUri().toString()).code());
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, "file://" + root + "/../secret.png").code());
            RequestError link = refused(f, root.resolve("link.png").toUri().toString());
            assertTrue(link.getMessage().contains("outside images.file_root"), link.getMessage());
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, root.resolve("dir").toUri().toString()).code());
            assertEquals(RequestError.IMAGE_FETCH_FAILED, refused(f, root.resolve("none.png").toUri().toString()).code());
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, "file://otherhost" + root.resolve("cat.png")).code());
        }
        try (ImageFetcher f = fetcher(List.of(), false, false, 3000, "")) {
            assertTrue(refused(f, root.resolve("cat.png").toUri().toString()).getMessage().contains("images.file_root is not set"));
        }
    }

    @Test
    void strangeUrlsAndAHangingResolverEndInTimeNeverHang() throws Exception {
        try (ImageFetcher f = fetcher(List.of("*"), true, true, 1500, "")) {
            long t0 = System.nanoTime();
            assertEquals(RequestError.INVALID_IMAGE, refused(f, "http://images.test:70000/cat.png").code(), "no such port");
            assertEquals(RequestError.IMAGE_URL_NOT_ALLOWED, refused(f, "http://[fe80::1%25eth0]/cat.png").code(), "a zone");
            assertTrue((System.nanoTime() - t0) / 1_000_000 < 1000, "refused at once");
        }
        // a name server that never answers: the fetch ends at its timeout, and the lookup holds the fetcher's own pool only
        ServiceConfig.Images rules = new ServiceConfig.Images(List.of("*"), true, true, 1500, 3, "");
        try (ImageFetcher f = new ImageFetcher(vertx, rules, 30_000, host -> {
            try {
                Thread.sleep(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new UnknownHostException(host);
        })) {
            long t0 = System.nanoTime();
            RequestError e = refused(f, "http://slow-dns.test/cat.png");
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertEquals(RequestError.IMAGE_FETCH_TIMEOUT, e.code(), e.getMessage());
            assertTrue(ms >= 1400 && ms < 5000, "ended at the timeout, after " + ms + " ms");
            // meanwhile the workers every request needs are free
            assertEquals("free", vertx.executeBlocking(() -> "free").toCompletionStage().toCompletableFuture().get(2, TimeUnit.SECONDS));
        }
    }

    @Test
    void dataUrlsAreDecoded() throws Exception {
        try (ImageFetcher f = fetcher(List.of(), false, false, 3000, "")) {
            assertArrayEquals(png, fetch(f, "data:image/png;base64," + java.util.Base64.getEncoder().encodeToString(png)));
        }
    }
}
