package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/** Reading Hugging Face JSON files with transformers' defaults for missing keys. */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper();

    private Json() {}

    static JsonNode read(Path file) {
        try {
            return MAPPER.readTree(Files.readString(file));
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("missing file " + file, e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    static int i(JsonNode n, String key, int dflt) {
        JsonNode v = n.get(key);
        return v == null || v.isNull() ? dflt : v.asInt();
    }

    static Integer optInt(JsonNode n, String key) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) {
            return null;
        }
        if (v.isArray()) {
            return v.size() == 0 ? null : v.get(0).asInt();
        }
        return v.asInt();
    }

    static double d(JsonNode n, String key, double dflt) {
        JsonNode v = n.get(key);
        return v == null || v.isNull() ? dflt : v.asDouble();
    }

    static boolean b(JsonNode n, String key, boolean dflt) {
        JsonNode v = n.get(key);
        return v == null || v.isNull() ? dflt : v.asBoolean();
    }

    static String s(JsonNode n, String key, String dflt) {
        JsonNode v = n.get(key);
        return v == null || v.isNull() ? dflt : v.asText();
    }

    static JsonNode obj(JsonNode n, String key) {
        JsonNode v = n.get(key);
        return v == null || v.isNull() ? MAPPER.createObjectNode() : v;
    }
}
