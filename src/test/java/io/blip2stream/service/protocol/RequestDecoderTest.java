package io.blip2stream.service.protocol;

import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.engine.RequestTexts;
import io.blip2stream.engine.Task;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RequestDecoderTest {
    final ServiceConfig config = ConfigLoader.load(null, Map.of(), Map.of());
    static final RequestTexts TEXTS = RequestTexts.load(Fixtures.model("blip2-opt-tiny"), Fixtures.model("blip2-itm-tiny"), 256);
    final RequestDecoder decoder = new RequestDecoder(config.inference(), config.limits(), TEXTS);
    final byte[] png = Fixtures.image("blip2-opt-tiny", 0);
    final String b64 = Base64.getEncoder().encodeToString(png);

    /** A record of blip2.requests partition 1 at offset 42, with these headers. */
    static ConsumerRecord<byte[], byte[]> record(String key, byte[] value, Map<String, byte[]> headers) {
        ConsumerRecord<byte[], byte[]> r = new ConsumerRecord<>("blip2.requests", 1, 42, key == null ? null : key.getBytes(StandardCharsets.UTF_8), value);
        headers.forEach((k, v) -> r.headers().add(k, v));
        return r;
    }

    InferenceJob json(String json, String key) {
        return decoder.decodeRecord(record(key, json.getBytes(StandardCharsets.UTF_8), Map.of()), 0);
    }

    InferenceJob decode(RequestDecoder d, byte[] value, Map<String, byte[]> headers, long accepted) {
        return d.decodeRecord(record("some-key", value, headers), accepted);
    }

    String code(Runnable r) {
        return assertThrows(RequestError.class, r::run).code();
    }

    @Test
    void jsonForm() {
        InferenceJob j = json("{\"id\":\"a1\",\"task\":\"vqa\",\"image\":\"" + b64 + "\",\"question\":\"what?\","
                + "\"params\":{\"max_new_tokens\":5,\"num_beams\":2,\"repetition_penalty\":1.2},\"stream\":true}", "k");
        assertEquals("a1", j.id());
        assertEquals(Task.VQA, j.task());
        assertArrayEquals(png, j.image());
        assertEquals(5, j.generation().params().maxNewTokens());
        assertEquals(2, j.generation().params().numBeams());
        assertTrue(j.stream());
        ConsumerRecord<byte[], byte[]> noId = record("camera-7", ("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes(), Map.of());
        assertEquals("blip2.requests-1-42@" + noId.timestamp(), decoder.decodeRecord(noId, 0).id(),
                "without an id of its own, where the record is: never its key");
        assertEquals(config.inference().defaultMaxNewTokens(), json("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}", null).generation().params().maxNewTokens());
    }

    @Test
    void rawForm() {
        Map<String, byte[]> h = new HashMap<>();
        h.put("blip2-task", "match".getBytes());
        h.put("blip2-texts", "[\"a cat\",\"a dog\"]".getBytes());
        h.put("blip2-id", "r1".getBytes());
        InferenceJob j = decode(decoder, png, h, 0);
        assertEquals("r1", j.id(), "the header blip2-id");
        assertEquals(Task.MATCH, j.task());
        assertEquals(2, j.retrieval().texts().size());
        h.put("blip2-task", "caption".getBytes());
        h.put("blip2-params", "{\"max_new_tokens\":7}".getBytes());
        h.put("blip2-stream", "true".getBytes());
        j = decode(decoder, png, h, 0);
        assertEquals(7, j.generation().params().maxNewTokens());
        assertTrue(j.stream());
    }

    @Test
    void badInputHasACode() {
        assertEquals(RequestError.INVALID_JSON, code(() -> json("{not json", null)));
        assertEquals(RequestError.INVALID_JSON, code(() -> json("[1,2]", null)));
        assertEquals(RequestError.UNKNOWN_TASK, code(() -> json("{\"task\":\"paint\",\"image\":\"" + b64 + "\"}", null)));
        assertEquals(RequestError.UNKNOWN_TASK, code(() -> json("{\"image\":\"" + b64 + "\"}", null)));
        assertEquals(RequestError.MISSING_IMAGE, code(() -> json("{\"task\":\"caption\"}", null)));
        assertEquals(RequestError.INVALID_IMAGE, code(() -> json("{\"task\":\"caption\",\"image\":\"***\"}", null)));
        assertEquals(RequestError.INVALID_IMAGE, code(() -> json("{\"task\":\"caption\",\"image\":\""
                + Base64.getEncoder().encodeToString("hello".getBytes()) + "\"}", null)));
        assertEquals(RequestError.MISSING_QUESTION, code(() -> json("{\"task\":\"vqa\",\"image\":\"" + b64 + "\"}", null)));
        assertEquals(RequestError.MISSING_TEXTS, code(() -> json("{\"task\":\"match\",\"image\":\"" + b64 + "\"}", null)));
        assertEquals(RequestError.MISSING_TEXTS, code(() -> json("{\"task\":\"match\",\"image\":\"" + b64 + "\",\"texts\":\"a\"}", null)));
        assertEquals(RequestError.INVALID_PARAMS, code(() -> json("{\"task\":\"caption\",\"image\":\"" + b64 + "\",\"params\":{\"num_beams\":0}}", null)));
        assertEquals(RequestError.INVALID_PARAMS, code(() -> json("{\"task\":\"caption\",\"image\":\"" + b64 + "\",\"params\":{\"max_new_tokens\":100000}}", null)));
        assertEquals(RequestError.INVALID_PARAMS, code(() -> json("{\"task\":\"caption\",\"image\":\"" + b64 + "\",\"params\":{\"beams\":2}}", null)));
        assertEquals(RequestError.INVALID_PARAMS, code(() -> json("{\"task\":\"caption\",\"image\":\"" + b64 + "\",\"params\":{\"top_p\":\"x\"}}", null)));
        Map<String, byte[]> h = new HashMap<>();
        h.put("blip2-task", "caption".getBytes());
        assertEquals(RequestError.INVALID_IMAGE, code(() -> decode(decoder, "not an image".getBytes(), h, 0)));
        h.put("blip2-params", "{oops".getBytes());
        assertEquals(RequestError.INVALID_PARAMS, code(() -> decode(decoder, png, h, 0)));
    }

    @Test
    void sizesAreCheckedBeforeDecoding() {
        RequestDecoder small = new RequestDecoder(config.inference(), new ServiceConfig.Limits(1000, 40_000_000, 1 << 20), TEXTS);
        assertEquals(RequestError.IMAGE_TOO_LARGE, code(() -> decode(small, ("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes(), Map.of(), 0)));
        RequestDecoder fewPixels = new RequestDecoder(config.inference(), new ServiceConfig.Limits(1 << 20, 1000, 1 << 20), TEXTS);
        assertEquals(RequestError.IMAGE_TOO_LARGE, code(() -> decode(fewPixels, ("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes(), Map.of(), 0)));
        RequestDecoder tinyRecords = new RequestDecoder(config.inference(), new ServiceConfig.Limits(1 << 20, 40_000_000, 100), TEXTS);
        assertEquals(RequestError.RECORD_TOO_LARGE, code(() -> decode(tinyRecords, ("{\"task\":\"caption\",\"image\":\"" + b64 + "\"}").getBytes(), Map.of(), 0)));
    }

    @Test
    void deadlines() {
        long ms = 1_000_000L;
        String caption = "{\"task\":\"caption\",\"image\":\"" + b64 + "\"";
        InferenceJob given = decode(decoder, (caption + ",\"deadline_ms\":1500}").getBytes(), Map.of(), 7 * ms);
        assertEquals(7 * ms + 1500 * ms, given.deadlineNanos(), "deadline_ms counts from acceptance");
        assertTrue(!given.pastDeadline(7 * ms + 1500 * ms) && given.pastDeadline(7 * ms + 1501 * ms));
        InferenceJob byDefault = decode(decoder, (caption + "}").getBytes(), Map.of(), 0);
        assertEquals(config.inference().defaultDeadlineMs() * ms, byDefault.deadlineNanos(), "the default deadline");
        Map<String, byte[]> h = new HashMap<>();
        h.put("blip2-task", "caption".getBytes());
        h.put("blip2-deadline-ms", "250".getBytes());
        assertEquals(250 * ms, decode(decoder, png, h, 0).deadlineNanos(), "the raw form's header");
        for (String bad : new String[] {"0", "-5", "1.5", "\"soon\"", "true", String.valueOf(config.inference().requestTimeoutMs() + 1)}) {
            RequestError e = assertThrows(RequestError.class,
                    () -> decode(decoder, (caption + ",\"deadline_ms\":" + bad + "}").getBytes(), Map.of(), 0), bad);
            assertEquals(RequestError.INVALID_REQUEST, e.code(), bad);
            assertTrue(e.getMessage().contains("deadline_ms"), e.getMessage());
        }
        h.put("blip2-deadline-ms", "later".getBytes());
        assertEquals(RequestError.INVALID_REQUEST, code(() -> decode(decoder, png, h, 0)));
        ServiceConfig none = ConfigLoader.load(null, Map.of("BLIP2_DEFAULT_DEADLINE_MS", "0"), Map.of());
        InferenceJob unlimited = decode(new RequestDecoder(none.inference(), none.limits(), TEXTS), (caption + "}").getBytes(), Map.of(), 0);
        assertEquals(InferenceJob.NO_DEADLINE, unlimited.deadlineNanos(), "0: no default deadline");
        assertTrue(!unlimited.pastDeadline(Long.MAX_VALUE - 1));
    }
}
