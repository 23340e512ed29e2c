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
        if (authorization != null && authorization.regionMatches(true, 0, "Bearer ", 0, 7)
                && tokens.contains(authorization.substring(7).trim())) {
            return true;
        }
        if (query != null) {
            for (String kv : query.split("&")) {
                if (kv.startsWith("access_token=")) {
                    String t = java.net.URLDecoder.decode(kv.substring(13), java.nio.charset.StandardCharsets.UTF_8);
                    if (tokens.contains(t)) {
                        return true;
                    }
                }
            }
        }
        return false;
    }
}
