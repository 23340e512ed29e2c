package io.blip2stream.service.image;

import io.blip2stream.engine.RequestError;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.protocol.ClientText;
import io.blip2stream.service.protocol.RequestDecoder;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientRequest;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.PoolOptions;
import io.vertx.core.http.RequestOptions;
import io.vertx.core.net.SocketAddress;

import java.net.InetAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnknownHostException;
import java.util.List;
import java.util.Locale;

/**
 * Images by reference: the bytes behind an {@code image_url}, fetched under {@code images.*} and
 * {@code limits.max_image_bytes}, or the reason they are refused, as a {@link RequestError}:
 * <ul>
 *   <li>{@code data:} URLs: their base64 payload;</li>
 *   <li>{@code https:} (and {@code http:} with {@code images.allow_http}) from a host in {@code images.allowed_hosts}
 *       ({@code *} for any): the host is resolved once, every address it resolves to must be public
 *       ({@link AddressRules}, unless {@code images.allow_private_addresses}), and the connection goes to the
 *       address checked, so a name that resolves differently a moment later (DNS rebinding) cannot lead it
 *       elsewhere. TLS is verified against the host's name. Redirects are followed by hand, at most
 *       {@code images.max_redirects}, each one checked as the first URL was; a redirect to a host outside the
 *       list, or from https to http, is refused. A declared length over the cap is refused before the body, and
 *       the body is cut off at the cap; the whole fetch, redirects included, has {@code images.fetch_timeout_ms}.
 *       Compressed transfer is not asked for (a small response cannot inflate into a large one);</li>
 *   <li>{@code file:} paths under {@code images.file_root} (a shared volume), symbolic links resolved first, so no
 *       link leads outside it; regular files only.</li>
 * </ul>
 * What it returns is checked as an inline image is, by the decoder. Messages name a URL without its query, where
 * presigned URLs keep their signatures.
 */
public final class ImageFetcher implements AutoCloseable {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ImageFetcher.class);
    /** Resolves a host name to its addresses (the system's resolver; tests give their own). */
    public interface Resolver {
        InetAddress[] resolve(String host) throws UnknownHostException;
    }

    /** An IPv4 address in dotted decimal, or an IPv6 one (a host with a colon can be nothing else). */
    private static final java.util.regex.Pattern IP_LITERAL = java.util.regex.Pattern.compile("\\d{1,3}(\\.\\d{1,3}){3}|[0-9a-f:.]*:[0-9a-f:.]*");

    private final Vertx vertx;
    private final ServiceConfig.Images rules;
    private final long maxBytes;
    private final Resolver resolver;
    private final HttpClient client;
    /**
     * Where lookups and file reads block: a pool of their own, so a resolver or a mount that hangs ties up these
     * threads only, never the workers that decode and tokenize every request (the fetch's timer ends the request).
     */
    private final io.vertx.core.WorkerExecutor blocking;
    private final ImageFiles files;

    public ImageFetcher(Vertx vertx, ServiceConfig.Images rules, long maxBytes) {
        this(vertx, rules, maxBytes, InetAddress::getAllByName);
    }

    public ImageFetcher(Vertx vertx, ServiceConfig.Images rules, long maxBytes, Resolver resolver) {
        this.vertx = vertx;
        this.rules = rules;
        this.maxBytes = maxBytes;
        this.resolver = resolver;
        this.client = vertx.createHttpClient(new HttpClientOptions()
                .setConnectTimeout((int) Math.min(Integer.MAX_VALUE, rules.fetchTimeoutMs()))
                .setVerifyHost(true)
                .setForceSni(true)
                .setDecompressionSupported(false)
                .setMaxRedirects(0)
                .setKeepAlive(true)
                .setName("blip2-image-fetch"), new PoolOptions().setHttp1MaxSize(8));
        this.blocking = vertx.createSharedWorkerExecutor("blip2-image-fetch", 8);
        this.files = new ImageFiles(rules.fileRoot(), maxBytes);
    }

    /**
     * One fetch: its promise, its one timer (the whole fetch, lookups, redirects and file reads included) and the
     * request in flight, reset when the fetch ends any other way than by its body's end. Used on one event loop.
     */
    private final class Fetch {
        final Promise<byte[]> done = Promise.promise();
        final long deadline = System.currentTimeMillis() + rules.fetchTimeoutMs();
        final long timer;
        String shown;
        HttpClientRequest current;

        Fetch(String shown) {
            this.shown = shown;
            this.timer = vertx.setTimer(rules.fetchTimeoutMs(), x -> fail(new RequestError(RequestError.IMAGE_FETCH_TIMEOUT,
                    "fetching " + this.shown + " did not finish within " + rules.fetchTimeoutMs() + " ms (images.fetch_timeout_ms)")));
        }

        boolean over() {
            return done.future().isComplete();
        }

        void fail(Throwable e) {
            if (done.tryFail(e)) {
                end();
            }
        }

        void complete(byte[] bytes) {
            if (done.tryComplete(bytes)) {
                end();
            }
        }

        /** Cancels the timer and resets the request in flight (not read to its end: its connection is not reused). */
        private void end() {
            vertx.cancelTimer(timer);
            if (current != null) {
                current.reset();
                current = null;
            }
        }

        long left() {
            return deadline - System.currentTimeMillis();
        }
    }

    /** The bytes of the image at {@code url}, or a {@link RequestError}; completes on the caller's context. */
    public Future<byte[]> fetch(String url) {
        String u = url == null ? "" : url.strip();
        if (u.isEmpty()) {
            return Future.failedFuture(new RequestError(RequestError.INVALID_IMAGE, "image_url is empty"));
        }
        if (u.regionMatches(true, 0, "data:", 0, 5)) {
            return blocking.executeBlocking(() -> RequestDecoder.base64Image("image_url", u), false); // megabytes: off the event loop
        }
        URI uri;
        try {
            uri = new URI(u);
        } catch (URISyntaxException e) {
            return Future.failedFuture(new RequestError(RequestError.INVALID_IMAGE, "image_url is not a URL: "
                    + ClientText.detail(e.getReason())));
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        switch (scheme) {
            case "http", "https" -> {
                Fetch f = new Fetch(scheme + "://" + ClientText.quote(String.valueOf(uri.getHost())));
                get(uri, 0, f);
                return f.done.future();
            }
            case "file" -> {
                Fetch f = new Fetch("file://" + ClientText.quote(String.valueOf(uri.getPath())));
                blocking.executeBlocking(() -> files.read(uri), false).onComplete(r -> {
                    if (r.succeeded()) {
                        f.complete(r.result());
                    } else {
                        f.fail(r.cause());
                    }
                });
                return f.done.future();
            }
            default -> {
                return Future.failedFuture(notAllowed("image_url has the scheme '" + ClientText.quote(scheme)
                        + "'; images are taken from data:, https:" + (rules.allowHttp() ? ", http:" : "") + " and file: URLs"));
            }
        }
    }

    // ---- http(s)

    /** One GET of the chain (the first, or a redirect's), checked before it connects. */
    private void get(URI uri, int redirects, Fetch f) {
        Target t;
        try {
            t = target(uri, redirects > 0);
        } catch (RequestError e) {
            f.fail(e);
            return;
        }
        f.shown = t.shown();
        blocking.executeBlocking(() -> resolve(t), false).onComplete(r -> {
            if (f.over()) {
                return;
            }
            if (r.failed()) {
                f.fail(r.cause());
                return;
            }
            try {
                connect(t, r.result(), redirects, f);
            } catch (RuntimeException e) { // an option Vert.x refuses, say: the fetch fails, it never hangs
                f.fail(new RequestError(RequestError.IMAGE_FETCH_FAILED, "could not GET " + t.shown() + ": " + ClientText.detail(reason(e))));
            }
        });
    }

    /** A URL's parts, checked against the rules that need no lookup. */
    private record Target(URI uri, boolean https, String host, int port, String pathAndQuery) {
        /** The URL as messages show it: without its query and fragment, which may hold secrets. */
        String shown() {
            String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
            if (path.length() > 200) {
                path = path.substring(0, 200) + "...";
            }
            boolean defaultPort = port == (https ? 443 : 80);
            return (https ? "https" : "http") + "://" + ClientText.quote(host) + (defaultPort ? "" : ":" + port) + ClientText.detail(path);
        }

        /** The host as the Host header and TLS name give it: an IPv6 address in brackets. */
        String authorityHost() {
            return host.contains(":") ? "[" + host + "]" : host;
        }
    }

    private Target target(URI uri, boolean redirected) {
        String via = redirected ? "redirected to " : "image_url ";
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("https") && !(scheme.equals("http") && rules.allowHttp())) {
            throw notAllowed(via + "a " + (scheme.isEmpty() ? "relative" : ClientText.quote(scheme)) + " URL: images come over https"
                    + (rules.allowHttp() ? " or http" : " (http only with images.allow_http)"));
        }
        if (uri.getRawUserInfo() != null) {
            throw notAllowed(via + "a URL with a user name or password in it");
        }
        String host = uri.getHost();
        if (host == null || host.isEmpty()) {
            throw new RequestError(RequestError.INVALID_IMAGE, via + "a URL without a valid host name");
        }
        host = host.toLowerCase(Locale.ROOT);
        if (host.endsWith(".")) {
            host = host.substring(0, host.length() - 1);
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        if (host.contains("%")) {
            throw notAllowed(via + "an IPv6 address with a zone (an interface of this node)");
        }
        int port = uri.getPort() >= 0 ? uri.getPort() : scheme.equals("https") ? 443 : 80;
        if (port < 1 || port > 65535) {
            throw new RequestError(RequestError.INVALID_IMAGE, via + "a URL with the port " + port + ", which is no port");
        }
        if (!hostAllowed(host, rules.allowedHosts())) {
            throw notAllowed(via + "the host '" + ClientText.quote(host) + "', which is not in images.allowed_hosts"
                    + (rules.allowedHosts().isEmpty() ? " (empty: images by URL are off)" : ""));
        }
        String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
        String pathAndQuery = uri.getRawQuery() == null ? path : path + "?" + uri.getRawQuery();
        return new Target(uri, scheme.equals("https"), host, port, pathAndQuery);
    }

    /** Whether {@code host} is in the list: {@code *}, the name itself, or {@code *.suffix} for names below suffix. */
    static boolean hostAllowed(String host, List<String> allowed) {
        for (String a : allowed) {
            String p = a.toLowerCase(Locale.ROOT).strip();
            if (p.endsWith(".")) {
                p = p.substring(0, p.length() - 1);
            }
            if (p.equals("*") || p.equals(host) || p.startsWith("*.") && host.endsWith(p.substring(1)) && host.length() > p.length() - 1) {
                return true;
            }
        }
        return false;
    }

    /**
     * The address to connect to: the host resolved once, every address it has checked (the fetcher's own pool).
     * Unknown and non-public come back as one refusal, so that a client cannot map the names of the service's own
     * network through the difference; the log has which it was.
     */
    private InetAddress resolve(Target t) {
        InetAddress[] all;
        String why = null;
        try {
            // an address written out is taken as it is (no lookup); a name is looked up once, here
            all = IP_LITERAL.matcher(t.host()).matches() ? new InetAddress[] {InetAddress.getByName(t.host())} : resolver.resolve(t.host());
            if (all == null || all.length == 0) {
                why = "it has no address";
            }
        } catch (UnknownHostException e) {
            all = null;
            why = "it is not known (DNS)";
        }
        if (why == null && !rules.allowPrivateAddresses()) {
            for (InetAddress a : all) {
                String not = AddressRules.notPublic(a);
                if (not != null) {
                    why = "it resolves to " + a.getHostAddress() + ", " + not;
                    break;
                }
            }
        }
        if (why != null) {
            LOG.info("image_url refused: the host '{}' of {}: {}", ClientText.log(t.host()), t.shown(), why);
            throw notAllowed("the host '" + ClientText.quote(t.host()) + "' of " + t.shown() + " has no address images may be fetched from"
                    + (rules.allowPrivateAddresses() ? " (it is not known)" : " (it is not known, or not public: loopback, private, "
                    + "link-local and other such addresses need images.allow_private_addresses)"));
        }
        return all[0];
    }

    private void connect(Target t, InetAddress address, int redirects, Fetch f) {
        long left = f.left();
        if (left <= 0) {
            return; // the timer fails it
        }
        RequestOptions o = new RequestOptions()
                .setMethod(HttpMethod.GET)
                .setServer(SocketAddress.inetSocketAddress(t.port(), address.getHostAddress()))
                .setHost(t.authorityHost())
                .setPort(t.port())
                .setSsl(t.https())
                .setURI(t.pathAndQuery())
                .setFollowRedirects(false)
                .setConnectTimeout(left)
                .setIdleTimeout(left)
                .putHeader("Accept", "image/*")
                .putHeader("User-Agent", "blip2-stream");
        client.request(o).compose(req -> {
            if (f.over()) { // the deadline passed while it connected
                req.reset();
                return Future.failedFuture("over");
            }
            f.current = req;
            return req.send();
        }).onComplete(ar -> {
            if (f.over()) {
                return;
            }
            if (ar.failed()) {
                f.current = null;
                f.fail(new RequestError(RequestError.IMAGE_FETCH_FAILED, "could not GET " + t.shown() + ": "
                        + ClientText.detail(reason(ar.cause()))));
                return;
            }
            HttpClientResponse res = ar.result();
            int status = res.statusCode();
            if (status >= 300 && status < 400 && res.getHeader("Location") != null) {
                f.current.reset(); // not read: the connection is not reused
                f.current = null;
                redirect(t, res.getHeader("Location"), redirects, f);
                return;
            }
            if (status < 200 || status >= 300) {
                f.fail(new RequestError(RequestError.IMAGE_FETCH_FAILED, "GET " + t.shown() + " answered " + status
                        + (res.statusMessage() == null ? "" : " " + ClientText.quote(res.statusMessage()))));
                return;
            }
            String length = res.getHeader("Content-Length");
            if (length != null && declaredOver(length)) {
                f.fail(new RequestError(RequestError.IMAGE_TOO_LARGE, "the image at " + t.shown() + " has "
                        + ClientText.quote(length.strip()) + " bytes; the limit is " + maxBytes + " (limits.max_image_bytes)"));
                return;
            }
            Buffer body = Buffer.buffer();
            res.handler(chunk -> {
                if (f.over()) {
                    return;
                }
                if (body.length() + chunk.length() > maxBytes) {
                    f.fail(new RequestError(RequestError.IMAGE_TOO_LARGE, "the image at " + t.shown()
                            + " is larger than the limit of " + maxBytes + " bytes (limits.max_image_bytes)"));
                    return;
                }
                body.appendBuffer(chunk);
            });
            res.exceptionHandler(e -> f.fail(new RequestError(RequestError.IMAGE_FETCH_FAILED, "the body of " + t.shown()
                    + " broke off: " + ClientText.detail(reason(e)))));
            res.endHandler(v -> {
                f.current = null; // read to its end: its connection may serve another fetch
                f.complete(body.getBytes());
            });
        });
    }

    /** A failure's message and its root cause's (a TLS failure says why only there). */
    private static String reason(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String m = String.valueOf(e.getMessage());
        return root == e || root.getMessage() == null ? m : m + " (" + root.getMessage() + ")";
    }

    private boolean declaredOver(String length) {
        try {
            return Long.parseLong(length.strip()) > maxBytes;
        } catch (NumberFormatException e) {
            return false; // not a number: the body is counted as it comes
        }
    }

    private void redirect(Target from, String location, int redirects, Fetch f) {
        if (redirects >= rules.maxRedirects()) {
            f.fail(new RequestError(RequestError.IMAGE_FETCH_FAILED, from.shown() + " redirects more than "
                    + rules.maxRedirects() + " times (images.max_redirects)"));
            return;
        }
        URI next;
        try {
            next = from.uri().resolve(new URI(location.strip()));
        } catch (URISyntaxException | IllegalArgumentException e) {
            f.fail(new RequestError(RequestError.IMAGE_FETCH_FAILED, from.shown() + " redirects to something that is not a URL"));
            return;
        }
        if (from.https() && "http".equalsIgnoreCase(next.getScheme())) {
            f.fail(notAllowed(from.shown() + " redirects from https to http"));
            return;
        }
        get(next, redirects + 1, f);
    }

    static RequestError notAllowed(String message) {
        return new RequestError(RequestError.IMAGE_URL_NOT_ALLOWED, message);
    }

    @Override
    public void close() {
        client.close();
        blocking.close();
    }
}
