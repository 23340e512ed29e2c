package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.image.BlipImageProcessor;
import io.blip2stream.model.image.ImageDecodeException;
import io.blip2stream.model.image.ImageDecoder;
import io.blip2stream.model.image.RgbImage;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Issue 9, item 8, as seeded fuzz tests: request parsing and image decoding answer or refuse every input and never
 * crash. Each case is drawn from a seed that a failure prints, so it can be replayed alone; inputs mix valid parts
 * (a PNG, a JPEG, known tasks and parameters) with truncated, bit-flipped, random and wrongly typed ones, since
 * random bytes alone seldom get past the first check.
 */
class RequestFuzzTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final int CASES = 600;
    final ServiceConfig config = ConfigLoader.load(null, Map.of(), Map.of());
    final RequestDecoder decoder = new RequestDecoder(config.inference(), config.limits(), RequestDecoderTest.TEXTS);
    final byte[] png = Fixtures.image("blip2-opt-tiny", 0);
    final byte[] jpeg = jpeg(png);

    static byte[] jpeg(byte[] png) {
        try {
            BufferedImage img = ImageIO.read(new ByteArrayInputStream(png));
            BufferedImage rgb = new BufferedImage(img.getWidth(), img.getHeight(), BufferedImage.TYPE_INT_RGB);
            rgb.getGraphics().drawImage(img, 0, 0, null);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ImageIO.write(rgb, "jpeg", out);
            return out.toByteArray();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** A job, or a RequestError with a code and a message; anything else fails with the case's seed. */
    InferenceJob answerOrRefusal(long seed, byte[] key, byte[] value, Map<String, byte[]> headers) {
        try {
            InferenceJob job = decoder.decodeRecord(RequestDecoderTest.record(key == null ? null : new String(key, StandardCharsets.UTF_8),
                    value, headers), 0);
            assertTrue(job.id() != null && job.task() != null, "seed " + seed);
            return job;
        } catch (RequestError e) {
            assertTrue(e.code() != null && e.getMessage() != null && !e.getMessage().isBlank(), "a refusal says why (seed " + seed + ")");
            return null;
        } catch (RuntimeException | StackOverflowError | OutOfMemoryError e) {
            throw new AssertionError("seed " + seed + ": neither answered nor refused: " + e, e);
        }
    }

    @Test
    void anyBytesAndAnyTextAreAnsweredOrRefused() {
        for (long seed = 0; seed < CASES; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            byte[] value = r.nextBoolean() ? randomBytes(r, 4096) : randomText(r, 400).getBytes(StandardCharsets.UTF_8);
            Map<String, byte[]> headers = r.nextBoolean() ? Map.of("blip2-task", "caption".getBytes(StandardCharsets.UTF_8)) : Map.of();
            answerOrRefusal(seed, r.nextBoolean() ? null : randomBytes(r, 40), value, headers);
        }
    }

    @Test
    void jsonRequestsOfMixedValidAndInvalidFieldsAreAnsweredOrRefused() throws IOException {
        int answered = 0;
        for (long seed = 0; seed < CASES; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            ObjectNode n = JSON.createObjectNode();
            if (r.nextInt(8) != 0) {
                putAny(n, "task", r, pick(r, "caption", "vqa", "match", "embed"));
            }
            if (r.nextInt(6) != 0) {
                // half of them whole: a damaged image is refused before the other fields would matter
                byte[] img = r.nextBoolean() ? (r.nextBoolean() ? png : jpeg) : image(r);
                putAny(n, "image", r, Base64.getEncoder().encodeToString(img));
            }
            if (r.nextBoolean()) {
                putAny(n, "question", r, randomText(r, 300));
            }
            if (r.nextInt(4) == 0) {
                putAny(n, "prompt", r, randomText(r, 60));
            }
            if (r.nextInt(4) == 0) {
                ArrayNode texts = n.putArray("texts");
                for (int i = r.nextInt(4); i > 0; i--) {
                    texts.add(r.nextInt(5) == 0 ? JSON.getNodeFactory().numberNode(r.nextInt()) : JSON.getNodeFactory().textNode(randomText(r, 80)));
                }
            }
            if (r.nextBoolean()) {
                ObjectNode p = n.putObject("params");
                for (int i = r.nextInt(5); i > 0; i--) {
                    String k = pick(r, "max_new_tokens", "min_new_tokens", "num_beams", "do_sample", "temperature", "top_k",
                            "top_p", "repetition_penalty", "length_penalty", "seed", "other");
                    putAny(p, k, r, r.nextBoolean() ? r.nextInt(-5, 2000) : r.nextDouble(-2, 3));
                }
            }
            if (r.nextInt(5) == 0) {
                putAny(n, "id", r, randomText(r, 300));
            }
            answered += answerOrRefusal(seed, null, JSON.writeValueAsBytes(n), Map.of()) != null ? 1 : 0;
        }
        assertTrue(answered > CASES / 20, "some requests are valid, so the cases reach past the first checks: " + answered);
    }

    @Test
    void rawRecordsWithAnyHeadersAreAnsweredOrRefused() {
        int answered = 0;
        for (long seed = 0; seed < CASES; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            Map<String, byte[]> headers = new HashMap<>();
            headers.put("blip2-task", pick(r, "caption", "vqa", "match", "embed", "", "CAPTION", randomText(r, 20)).getBytes(StandardCharsets.UTF_8));
            for (String h : new String[] {"blip2-question", "blip2-prompt", "blip2-params", "blip2-texts", "blip2-stream"}) {
                if (r.nextBoolean()) {
                    headers.put(h, pick(r, "", "{}", "[]", "null", "true", "yes", "{\"max_new_tokens\":-1}", "{\"max_new_tokens\":1e9}",
                            "{\"num_beams\":0}", "{\"temperature\":\"hot\"}", "{\"top_p\":2}", "[\"a\",1]", "what color is it?",
                            randomText(r, 64)).getBytes(StandardCharsets.UTF_8));
                }
            }
            answered += answerOrRefusal(seed, null, image(r), headers) != null ? 1 : 0;
        }
        assertTrue(answered > CASES / 20, "some records are valid: " + answered);
    }

    @Test
    void anImageIsDecodedWholeOrRefusedAndWhatDecodesPreprocesses() {
        ImageDecoder images = new ImageDecoder(config.limits().maxImagePixels());
        BlipImageProcessor processor = new BlipImageProcessor(PreprocessorConfig.parse(JSON.createObjectNode(), 32));
        int decoded = 0;
        for (long seed = 0; seed < CASES; seed++) {
            SplittableRandom r = new SplittableRandom(seed);
            byte[] bytes = image(r);
            RgbImage img;
            String validated;
            try {
                images.validate(bytes);
                validated = null;
            } catch (ImageDecodeException e) {
                validated = e.getMessage();
            }
            try {
                img = images.decode(bytes);
            } catch (ImageDecodeException e) {
                assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), "a refusal says why (seed " + seed + ")");
                assertEquals(e.getMessage(), validated, "validation refuses what decoding refuses, for the same reason (seed " + seed + ")");
                continue;
            } catch (RuntimeException | OutOfMemoryError e) {
                fail("seed " + seed + ": neither decoded nor refused: " + e, e);
                return;
            }
            decoded++;
            assertEquals(null, validated, "validation passes what decodes (seed " + seed + ")");
            assertTrue(img.width() > 0 && img.height() > 0, "seed " + seed);
            assertEquals((long) img.width() * img.height() * 3, img.pixels().length, "seed " + seed);
            float[] px = processor.preprocess(img);
            assertEquals(3 * 32 * 32, px.length, "seed " + seed);
            for (float v : px) {
                assertTrue(Float.isFinite(v), "seed " + seed);
            }
        }
        assertTrue(decoded > CASES / 10, "some images are whole: " + decoded);
    }

    // ---- generators

    /** A PNG or JPEG: whole, truncated anywhere, with a few bits flipped, or random bytes. */
    byte[] image(SplittableRandom r) {
        byte[] valid = r.nextBoolean() ? png : jpeg;
        switch (r.nextInt(4)) {
            case 0:
                return valid;
            case 1:
                return Arrays.copyOf(valid, r.nextInt(valid.length));
            case 2:
                byte[] c = valid.clone();
                for (int i = 1 + r.nextInt(8); i > 0; i--) {
                    c[r.nextInt(c.length)] ^= (byte) (1 << r.nextInt(8));
                }
                return c;
            default:
                return randomBytes(r, 2048);
        }
    }

    /** {@code value}, or in one case of four a value of another type (number, boolean, null, array, object). */
    static void putAny(ObjectNode n, String field, SplittableRandom r, Object value) {
        switch (r.nextInt(12)) {
            case 0 -> n.put(field, r.nextInt());
            case 1 -> n.put(field, r.nextBoolean());
            case 2 -> n.putNull(field);
            case 3 -> n.putArray(field).add(String.valueOf(value));
            default -> n.putPOJO(field, value);
        }
    }

    static byte[] randomBytes(SplittableRandom r, int max) {
        byte[] b = new byte[r.nextInt(max + 1)];
        r.nextBytes(b);
        return b;
    }

    static String randomText(SplittableRandom r, int max) {
        StringBuilder s = new StringBuilder();
        for (int i = r.nextInt(max + 1); i > 0; i--) {
            int kind = r.nextInt(10);
            s.appendCodePoint(kind < 6 ? 32 + r.nextInt(95) : kind < 8 ? r.nextInt(0x20) : kind < 9 ? 0x80 + r.nextInt(0x700) : 0x1F300 + r.nextInt(0x200));
        }
        return s.toString();
    }

    @SafeVarargs
    static <T> T pick(SplittableRandom r, T... values) {
        return values[r.nextInt(values.length)];
    }
}
