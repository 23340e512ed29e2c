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

    /** Issue 21: model.dtype (BLIP2_DTYPE) is one of the precisions or auto, by default auto; anything else is named. */
    @Test
    void theDtypeIsAPrecisionOrAuto() {
        assertEquals("auto", ConfigLoader.load(null, Map.of(), Map.of()).dtype());
        assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null, Map.of(), Map.of("model.dtype", "")));
        for (String ok : List.of("float32", "bfloat16", "int8", "auto", " INT8 ")) {
            assertEquals(ok, ConfigLoader.load(null, Map.of("BLIP2_DTYPE", ok), Map.of()).dtype());
        }
        for (String bad : List.of("fp16", "float16", "bf16", "int4", "float32; rm -rf /")) {
            var e = assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null, Map.of("BLIP2_DTYPE", bad), Map.of()), bad);
            assertTrue(e.getMessage().contains("model.dtype") && e.getMessage().contains("bfloat16"), e.getMessage());
        }
    }

    /** Issues 19 and 20: the new settings refuse what would switch their protection off by accident. */
    @Test
    void theHostileInputAndClusterSettingsRefuseEmptyValues() {
        for (var bad : List.of(Map.of("BLIP2_KAFKA_POISON_AFTER_CRASHES", "0"), Map.of("BLIP2_HTTP_HEADER_TIMEOUT_MS", "0"),
                Map.of("BLIP2_HTTP_BODY_TIMEOUT_MS", "-1"))) {
            assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null, bad, Map.of()), bad.toString());
        }
        ServiceConfig c = ConfigLoader.load(null, Map.of("BLIP2_HTTP_ALLOWED_HOSTS", "blip2.example.com, blip2-stream"), Map.of());
        assertEquals(List.of("blip2.example.com", "blip2-stream"), c.http().allowedHosts());
        ServiceConfig several = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_MEMBERS", "127.0.0.1:5702"), Map.of());
        var e = assertThrows(IllegalArgumentException.class, () -> io.blip2stream.cluster.ClusterBootstrap.cipher(several.cluster()));
        assertTrue(e.getMessage().contains("BLIP2_CLUSTER_KEY_FILE"), "several nodes without a key refuse: " + e.getMessage());
        ServiceConfig insecure = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_MEMBERS", "127.0.0.1:5702", "BLIP2_CLUSTER_INSECURE", "true"),
                Map.of());
        assertTrue(io.blip2stream.cluster.ClusterBootstrap.cipher(insecure.cluster()).origin().contains("insecure"));
        assertTrue(io.blip2stream.cluster.ClusterBootstrap.cipher(ConfigLoader.load(null, Map.of(), Map.of()).cluster())
                .origin().contains("random"), "a node alone needs no key");
    }
}
