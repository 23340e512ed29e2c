package io.blip2stream.service.http;

import io.blip2stream.service.config.ServiceConfig;
import io.vertx.core.MultiMap;

import java.net.URI;
import java.util.List;

/**
 * Who may use {@code /v1}: browsers from allowed origins (the page's own origin always; others when listed, or
 * any with "*"), and, when tokens are configured, only callers presenting one ({@code Authorization: Bearer},
 * or {@code ?access_token=} where a browser cannot set headers, as on a WebSocket).
 */
final class Access {
    private final List<String> origins;
    private final List<String> tokens;

    Access(ServiceConfig.Http http) {
        this.origins = http.allowedOrigins();
        this.tokens = http.authTokens();
    }

    /** 0 when allowed, else the HTTP status to refuse with (401 or 403). */
    int check(MultiMap headers, String query) {
        String origin = headers.get("Origin");
        if (origin != null && !originAllowed(origin, headers.get("Host"))) {
            return 403;
        }
        if (!tokens.isEmpty() && !tokenPresented(headers.get("Authorization"), query)) {
            return 401;
        }
        return 0;
    }

    boolean originAllowed(String origin, String host) {
        if (origins.contains("*") || origins.contains(origin)) {
            return true;
        }
        try {
            URI u = URI.create(origin);
            String authority = u.getPort() < 0 ? u.getHost() : u.getHost() + ":" + u.getPort();
            return host != null && host.equalsIgnoreCase(authority); // same origin as the page
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private boolean tokenPresented(String authorization, String query) {
        return presented(authorization, query) != null;
    }

    /** The configured token the caller presented, or null. */
    private String presented(String authorization, String query) {
        if (authorization != null && authorization.regionMatches(true, 0, "Bearer ", 0, 7)
                && tokens.contains(authorization.substring(7).trim())) {
            return authorization.substring(7).trim();
        }
        if (query != null) {
            for (String kv : query.split("&")) {
                if (kv.startsWith("access_token=")) {
                    String t = java.net.URLDecoder.decode(kv.substring(13), java.nio.charset.StandardCharsets.UTF_8);
                    if (tokens.contains(t)) {
                        return t;
                    }
                }
            }
        }
        return null;
    }

    /**
     * Who the caller is, for owning requests and counting sockets: a fingerprint of the token it presented (the
     * token itself is never stored), or null when no tokens are configured (an open service: everyone is one).
     */
    String principal(MultiMap headers, String query) {
        if (tokens.isEmpty()) {
            return null;
        }
        String t = presented(headers.get("Authorization"), query);
        if (t == null) {
            return null;
        }
        try {
            byte[] d = java.security.MessageDigest.getInstance("SHA-256").digest(t.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return "t-" + java.util.HexFormat.of().formatHex(d, 0, 8);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Whether {@code principal} may see a request owned by {@code owner} (null: a Kafka request, or an open service). */
    static boolean mayFollow(String principal, String owner) {
        return owner == null || owner.equals(principal);
    }
}
