package io.blip2stream.service.http;

import io.blip2stream.service.config.ServiceConfig;
import io.vertx.core.MultiMap;

import java.net.URI;
import java.util.List;

/**
 * Who may use {@code /v1}: browsers from allowed origins, and, when tokens are configured, only callers presenting
 * one ({@code Authorization: Bearer}, or {@code ?access_token=} where a browser cannot set headers, as on a
 * WebSocket).
 *
 * <p>A browser origin is allowed when it is listed ({@code http.allowed_origins}, or "*"), or when it is the page's
 * own: the same as the request's {@code Host}, and that host one this service answers to: {@code localhost}, an IP
 * address, or a name in {@code http.allowed_hosts} (or {@code http.host}). The Host alone is never trusted: a
 * DNS-rebinding page (its own name pointed at this service's address) sends its own name as Host and Origin alike,
 * and is refused. An open service (no tokens) also refuses any request whose Host is not such a host (421), so the
 * rebinding page cannot read it with same-origin requests that carry no Origin.
 */
final class Access {
    private final List<String> origins;
    private final List<String> tokens;
    /** host names (lower case) this service answers to, besides localhost and IP addresses */
    private final java.util.Set<String> hosts = new java.util.HashSet<>();

    Access(ServiceConfig.Http http, String bindHost) {
        this.origins = http.allowedOrigins();
        this.tokens = http.authTokens();
        http.allowedHosts().forEach(h -> hosts.add(h.toLowerCase(java.util.Locale.ROOT)));
        if (bindHost != null && !bindHost.isBlank()) {
            hosts.add(bindHost.toLowerCase(java.util.Locale.ROOT));
        }
    }

    /** 0 when allowed, else the HTTP status to refuse with (401, 403 or 421). */
    int check(MultiMap headers, String query) {
        String origin = headers.get("Origin");
        String host = headers.get("Host");
        if (origin != null && !originAllowed(origin, host)) {
            return 403;
        }
        if (tokens.isEmpty() && !hostAllowed(host)) {
            return 421;
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
            if (u.getHost() == null) {
                return false;
            }
            String authority = u.getPort() < 0 ? u.getHost() : u.getHost() + ":" + u.getPort();
            // the page's own origin: the host it was loaded from, if that is a host this service answers to
            return host != null && host.equalsIgnoreCase(authority) && hostAllowed(host);
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    /** Whether a Host header names this service: localhost, an IP address, or a configured name (any port). */
    boolean hostAllowed(String hostHeader) {
        if (hostHeader == null || hostHeader.isBlank()) {
            return false;
        }
        String h = hostHeader.trim().toLowerCase(java.util.Locale.ROOT);
        if (h.startsWith("[")) { // an IPv6 literal, [::1]:8080
            int end = h.indexOf(']');
            return end > 1 && h.substring(1, end).matches("[0-9a-f:.]+");
        }
        int colon = h.lastIndexOf(':');
        String name = colon >= 0 ? h.substring(0, colon) : h;
        if (name.endsWith(".")) {
            name = name.substring(0, name.length() - 1);
        }
        return name.equals("localhost") || name.matches("\\d{1,3}(\\.\\d{1,3}){3}") || hosts.contains(name);
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
        return "t-" + io.blip2stream.common.Sha256.prefix(t, 8);
    }

    /** Whether {@code principal} may see a request owned by {@code owner} (null: a Kafka request, or an open service). */
    static boolean mayFollow(String principal, String owner) {
        return owner == null || owner.equals(principal);
    }
}
