package io.blip2stream.e2e;

import io.blip2stream.model.Fixtures;
import io.blip2stream.model.image.ExifOrientationTest;
import io.blip2stream.model.image.PoisonImageTest;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.awt.Transparency;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.WritableRaster;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.UUID;
import javax.imageio.ImageIO;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Poison input through Kafka (issue 9, item 4), against {@code serve} with {@code -Xmx1g}: malformed JSON, bytes
 * that are no image, PNGs and JPEGs truncated at 10, 50 and 90%, PNG and JPEG headers claiming 50,000 x 50,000,
 * a CMYK JPEG, records of 1.1 and 10 MB of junk each reach the DLT with their reason within 2 s; a zlib bomb, a GIF
 * of 10,000 frames, 16-bit and palette PNGs, and PNGs with EXIF orientations 1 to 8 are answered; good requests
 * sent between them are answered; the service never runs out of memory.
 */
@Tag("e2e")
class PoisonRecordsIT {
    @TempDir
    Path tmp;

    record Sent(String id, boolean bad, long sentAt) {}

    static ProducerRecord<String, byte[]> raw(String id, byte[] image) {
        ProducerRecord<String, byte[]> r = new ProducerRecord<>("blip2.requests", id, image);
        r.headers().add("blip2-task", "caption".getBytes()).add("blip2-params", "{\"max_new_tokens\":3}".getBytes());
        return r;
    }

    static byte[] png(BufferedImage img) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    @Test
    void poisonRecordsGoToTheDltAndGoodOnesAroundThemAreAnswered() throws Exception {
        ServeProcess serve = new ServeProcess(tmp.resolve("data"), List.of("-Xmx1g", "-XX:+ExitOnOutOfMemoryError"), List.of(),
                Map.of());
        int kafka = serve.kafkaPort;
        Process p = serve.process;
        StringBuffer log = serve.log;
        try {
            assertTrue(serve.awaitReady(120), "the service starts: " + log);
            byte[] good = Fixtures.image("blip2-opt-tiny", 0);
            BufferedImage scene = new BufferedImage(64, 64, BufferedImage.TYPE_INT_RGB);
            for (int y = 0; y < 64; y++) {
                for (int x = 0; x < 64; x++) {
                    scene.setRGB(x, y, x * 4 << 16 | y * 4 << 8 | (x ^ y) * 4);
                }
            }
            byte[] scenePng = png(scene);
            byte[] sceneJpeg = PoisonImageTest.jpeg(scene);
            SplittableRandom rnd = new SplittableRandom(11);
            byte[] junk11 = new byte[1_100_000];
            byte[] junk10 = new byte[10_000_000];
            rnd.nextBytes(junk11);
            rnd.nextBytes(junk10);

            Map<String, ProducerRecord<String, byte[]>> bad = new LinkedHashMap<>();
            bad.put("malformed-json", new ProducerRecord<>("blip2.requests", "malformed-json", "{\"task\":\"caption\",\"image\":".getBytes()));
            bad.put("no-image", raw("no-image", "these bytes are no image at all".getBytes()));
            for (int pct : new int[] {10, 50, 90}) {
                bad.put("png-cut-" + pct, raw("png-cut-" + pct, Arrays.copyOf(scenePng, scenePng.length * pct / 100)));
                bad.put("jpeg-cut-" + pct, raw("jpeg-cut-" + pct, Arrays.copyOf(sceneJpeg, sceneJpeg.length * pct / 100)));
            }
            bad.put("png-bomb", raw("png-bomb", PoisonImageTest.png(50_000, 50_000, PoisonImageTest.deflate(new byte[50_001], 4))));
            bad.put("jpeg-bomb", raw("jpeg-bomb", PoisonImageTest.jpegBomb()));
            bad.put("cmyk-jpeg", raw("cmyk-jpeg", PoisonImageTest.cmykJpeg()));
            bad.put("junk-1.1MB", raw("junk-1.1MB", junk11));
            bad.put("junk-10MB", raw("junk-10MB", junk10));

            Map<String, ProducerRecord<String, byte[]>> fine = new LinkedHashMap<>();
            fine.put("zlib-bomb", raw("zlib-bomb", PoisonImageTest.png(1000, 1000, PoisonImageTest.deflate(new byte[1 << 20], 200))));
            fine.put("gif-10000-frames", raw("gif-10000-frames", PoisonImageTest.gif(10_000)));
            ComponentColorModel cm16 = new ComponentColorModel(ColorSpace.getInstance(ColorSpace.CS_sRGB), new int[] {16, 16, 16},
                    false, false, Transparency.OPAQUE, DataBuffer.TYPE_USHORT);
            WritableRaster r16 = cm16.createCompatibleWritableRaster(32, 32);
            fine.put("png-16-bit", raw("png-16-bit", png(new BufferedImage(cm16, r16, false, null))));
            fine.put("png-palette", raw("png-palette", png(new BufferedImage(32, 32, BufferedImage.TYPE_BYTE_INDEXED))));
            for (int o = 1; o <= 8; o++) {
                fine.put("exif-" + o, raw("exif-" + o, ExifOrientationTest.withPngChunk(ExifOrientationTest.png3x2(), "eXIf",
                        ExifOrientationTest.tiff(o, o % 2 == 0))));
            }

            List<Sent> sent = new ArrayList<>();
            int goodCount = 0;
            try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(Map.of("bootstrap.servers", "localhost:" + kafka,
                    "max.request.size", String.valueOf(32 << 20)), new StringSerializer(), new ByteArraySerializer())) {
                List<ProducerRecord<String, byte[]>> all = new ArrayList<>();
                all.addAll(bad.values());
                all.addAll(fine.values());
                for (ProducerRecord<String, byte[]> r : all) {
                    String goodId = "good-" + goodCount++;
                    producer.send(raw(goodId, good)).get();
                    sent.add(new Sent(goodId, false, System.currentTimeMillis()));
                    producer.send(r).get();
                    sent.add(new Sent(r.key(), bad.containsKey(r.key()), System.currentTimeMillis()));
                }
            }

            Map<String, ConsumerRecord<String, byte[]>> got = new HashMap<>();
            Map<String, Long> gotAt = new HashMap<>();
            Map<String, Object> cc = new HashMap<>();
            cc.put("bootstrap.servers", "localhost:" + kafka);
            cc.put("group.id", "it-" + UUID.randomUUID());
            cc.put("max.partition.fetch.bytes", String.valueOf(32 << 20));
            cc.put("fetch.max.bytes", String.valueOf(64 << 20));
            try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(cc, new StringDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> tps = new ArrayList<>();
                for (String t : List.of("blip2.captions", "blip2.requests.DLT")) {
                    c.partitionsFor(t).forEach(pi -> tps.add(new TopicPartition(t, pi.partition())));
                }
                c.assign(tps);
                c.seekToBeginning(tps);
                long end = System.currentTimeMillis() + 120_000;
                while (System.currentTimeMillis() < end && got.size() < sent.size()) {
                    for (ConsumerRecord<String, byte[]> r : io.blip2stream.service.protocol.RecordSchemas.checked(c.poll(Duration.ofMillis(100)))) {
                        got.putIfAbsent(r.key(), r);
                        gotAt.putIfAbsent(r.key(), r.timestamp());
                    }
                }
            }
            for (Sent s : sent) {
                ConsumerRecord<String, byte[]> r = got.get(s.id());
                assertNotNull(r, s.id() + " was answered");
                if (s.bad()) {
                    assertEquals("blip2.requests.DLT", r.topic(), s.id());
                    assertNotNull(r.headers().lastHeader("blip2-error-code"), s.id());
                    String reason = new String(r.headers().lastHeader("blip2-error-message").value(), StandardCharsets.UTF_8);
                    assertFalse(reason.isBlank(), s.id());
                    long latency = gotAt.get(s.id()) - s.sentAt();
                    assertTrue(latency < 2000, s.id() + " reached the DLT " + latency + " ms after it was sent");
                    System.out.println(s.id() + ": " + new String(r.headers().lastHeader("blip2-error-code").value())
                            + " after " + latency + " ms: " + reason);
                } else {
                    assertEquals("blip2.captions", r.topic(), s.id() + ": " + new String(r.value(), StandardCharsets.UTF_8));
                }
            }
            assertTrue(p.isAlive(), "the service is still up");
            assertFalse(log.toString().contains("OutOfMemoryError"), "no OutOfMemoryError");
        } finally {
            serve.stop();
        }
    }
}
