package io.blip2stream.service.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ConfigLoaderTest {
    @TempDir
    Path dir;

    @Test
    void defaultsComeFromConfApplicationYaml() {
        ServiceConfig c = ConfigLoader.load(null, Map.of(), Map.of());
        assertEquals(8080, c.httpPort());
        assertEquals("blip2.requests", c.kafka().topics().requests());
        assertEquals("blip2.requests.DLT", c.kafka().topics().deadLetter());
        assertTrue(c.kafka().embedded());
        assertEquals("localhost:9092", c.bootstrapServers());
        assertEquals(List.of("cpu"), c.devices());
    }

    @Test
    void aFileThenTheEnvironmentOverride() throws Exception {
        Path f = Files.writeString(dir.resolve("c.yaml"), "http:\n  port: 9000\nkafka:\n  topics:\n    captions: my.captions\n"
                + "  consumer:\n    session.timeout.ms: '30000'\n");
        ServiceConfig c = ConfigLoader.load(f, Map.of("BLIP2_HTTP_PORT", "9100", "BLIP2_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092",
                "BLIP2_DEVICES", "cpu,gpu:0", "BLIP2_MODEL", "/models/x"), Map.of());
        assertEquals(9100, c.httpPort(), "the environment wins over the file");
        assertEquals("my.captions", c.kafka().topics().captions());
        assertEquals("k1:9092,k2:9092", c.bootstrapServers());
        assertEquals(List.of("cpu", "gpu:0"), c.devices());
        assertEquals("/models/x", c.modelPath());
        assertEquals("30000", c.kafka().consumer().get("session.timeout.ms"));
    }

    @Test
    void mistakesAreNamed() throws Exception {
        Path f = Files.writeString(dir.resolve("bad.yaml"), "http:\n  prot: 9000\n");
        var e = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(f, Map.of(), Map.of()));
        assertTrue(e.getMessage().contains("http.prot"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null, Map.of("BLIP2_HTTP_PORT", "eighty"), Map.of()));
        assertTrue(e.getMessage().contains("http.port"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null, Map.of("BLIP2_DEVICES", "tpu"), Map.of()));
        assertTrue(e.getMessage().contains("tpu"), e.getMessage());
    }
}
