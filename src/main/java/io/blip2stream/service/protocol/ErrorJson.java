package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * The JSON of an error answered over HTTP, on every endpoint under {@code /v1}: OpenAI's shape, so that its clients
 * surface it as they would OpenAI's, {@code {"error": {"message", "type", "param", "code"}}}. The type follows the
 * status as OpenAI gives it ({@code invalid_request_error}, also for 404; {@code authentication_error},
 * {@code permission_error}, {@code rate_limit_error}, {@code server_error}); the code is this service's own
 * ({@code invalid_image}, {@code overloaded}, ...).
 */
public final class ErrorJson {
    private ErrorJson() {}

    public static ObjectNode of(int status, String code, String message) {
        ObjectNode o = ResultJson.JSON.createObjectNode();
        ObjectNode e = o.putObject("error");
        e.put("message", message == null ? code : message);
        e.put("type", type(status));
        e.putNull("param");
        e.put("code", code);
        return o;
    }

    static String type(int status) {
        return switch (status) {
            case 401 -> "authentication_error";
            case 403 -> "permission_error";
            case 429 -> "rate_limit_error";
            default -> status >= 500 ? "server_error" : "invalid_request_error";
        };
    }
}
