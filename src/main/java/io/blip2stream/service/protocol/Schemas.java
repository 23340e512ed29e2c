package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON Schemas (draft 2020-12) of every record the service reads or writes, kept in the jar under
 * {@code schemas/} (src/main/resources/schemas in the repository) and served at {@code /v1/schemas/{name}}:
 * {@code request}; the results {@code caption}, {@code answer}, {@code match}, {@code embedding}; {@code token};
 * and {@code dead-letter} (a dead letter's headers, as an object).
 */
public final class Schemas {
    /** Every schema, by name, in the order they are listed. */
    public static final List<String> NAMES = List.of("request", "caption", "answer", "match", "embedding", "token", "dead-letter");
    private static final Map<String, byte[]> BYTES = new LinkedHashMap<>();

    static {
        for (String name : NAMES) {
            try (InputStream in = Schemas.class.getResourceAsStream("/schemas/" + name + ".json")) {
                if (in == null) {
                    throw new IllegalStateException("the schema " + name + " is missing from the jar");
                }
                BYTES.put(name, in.readAllBytes());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    private Schemas() {}

    /** The schema's text, or null when there is none of that name. */
    public static byte[] bytes(String name) {
        return name == null ? null : BYTES.get(name);
    }

    /** The schema, parsed. */
    public static JsonNode json(String name) {
        try {
            return ResultJson.JSON.readTree(bytes(name));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The schema that a result of the given task ({@code caption}, {@code vqa}, {@code match}, {@code embed}) follows. */
    public static String forTask(String task) {
        return switch (task) {
            case "caption" -> "caption";
            case "vqa" -> "answer";
            case "match" -> "match";
            case "embed" -> "embedding";
            default -> null;
        };
    }
}
