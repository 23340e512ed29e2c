package io.blip2stream.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.model.weights.SafetensorsFile;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The transformers reference fixtures copied into test resources (see fixtures/README.md). */
public final class Fixtures {
    private Fixtures() {}

    public static Path root() {
        try {
            return Path.of(Fixtures.class.getResource("/fixtures/hf-transformers-5.17").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A fixture folder: under hf-transformers-5.17 (the shared ones) or, for "extra/NAME", extra-transformers-5.17. */
    public static Path dir(String name) {
        if (name.startsWith("extra/")) {
            return root().resolveSibling("extra-transformers-5.17").resolve(name.substring(6));
        }
        return root().resolve(name);
    }

    public static Path model(String name) {
        return dir(name).resolve("model");
    }

    public static JsonNode expected(String name) {
        try {
            return new ObjectMapper().readTree(dir(name).resolve("expected.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static List<JsonNode> cases(String name) {
        List<JsonNode> out = new ArrayList<>();
        expected(name).get("cases").forEach(out::add);
        return out;
    }

    public static byte[] image(String name, int i) {
        return file(name, "image" + i + ".png");
    }

    public static byte[] file(String name, String file) {
        try {
            return Files.readAllBytes(dir(name).resolve(file));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A tensor of expected.safetensors with its shape. */
    public record Tensor(long[] shape, float[] values) {}

    public static Tensor tensor(String name, String tensor) {
        try (SafetensorsFile f = SafetensorsFile.open(dir(name).resolve("expected.safetensors"))) {
            SafetensorsFile.Entry e = f.entries().get(tensor);
            if (e == null) {
                throw new IllegalArgumentException("no tensor " + tensor);
            }
            FloatBuffer fb = f.map(e).asFloatBuffer();
            float[] v = new float[fb.remaining()];
            fb.get(v);
            return new Tensor(e.shape(), v);
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
    }

    public static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    /** max |a - b| */
    public static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new AssertionError("lengths differ: " + a.length + " vs " + b.length);
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }

    /** The README's tolerance: max abs diff under 1e-3 of max(1, max abs value). */
    public static double tolerance(float[] expected) {
        double m = 1;
        for (float v : expected) {
            m = Math.max(m, Math.abs(v));
        }
        return 1e-3 * m;
    }
}
