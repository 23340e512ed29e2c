package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.engine.RequestTexts;
import io.blip2stream.engine.Task;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.model.generation.RowFailure;
import io.blip2stream.model.generation.RowListener;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 19, item 8: a property-based fuzzer of the record and request decoders, the tokenizer boundary and the
 * generation parameters. Each property holds for every case its generators draw: inputs that mix valid parts with
 * hostile ones (any UTF-16 unit, lone surrogates, NUL and separators among them; texts from empty to 20x their byte
 * bound; null, duplicate and binary headers; values of every JSON type in every field; numbers at the edges of
 * float32 and double). Every case comes from a seed a failure prints: {@code -Dblip2.fuzz.seed=S} replays it alone.
 * Cases per property: {@code blip2.fuzz.cases} (1,000 in CI; {@code -Plong-tests}: 100,000). Each property prints
 * how its cases ended, so a generator that stopped reaching a path shows.
 */
class HostileInputFuzzTest {
    static final int CASES = Integer.getInteger("blip2.fuzz.cases", 1000);
    static final Long ONE_SEED = Long.getLong("blip2.fuzz.seed");
    static final JsonNodeFactory F = JsonNodeFactory.instance;
    static final ServiceConfig CONFIG = ConfigLoader.load(null, Map.of(), Map.of());
    static final RequestTexts TEXTS = RequestDecoderTest.TEXTS;
    static final RequestDecoder DECODER = new RequestDecoder(CONFIG.inference(), CONFIG.limits(), TEXTS);
    static final int VOCAB = io.blip2stream.model.config.Blip2Config.load(Fixtures.model("blip2-opt-tiny")).text().vocabSize();
    static final String PNG = Base64.getEncoder().encodeToString(Fixtures.image("blip2-opt-tiny", 0));
    /** Every code a refusal may carry. */
    static final Set<String> CODES = codes();
    static final List<String> HEADERS = List.of("blip2-id", "blip2-task", "blip2-question", "blip2-prompt", "blip2-texts",
            "blip2-params", "blip2-stream", "blip2-deadline-ms", "traceparent", "x-junk", "BLIP2-TASK", "");

    static Set<String> codes() {
        Set<String> out = new HashSet<>();
        for (Field f : RequestError.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == String.class) {
                try {
                    out.add((String) f.get(null));
                } catch (IllegalAccessException e) {
                    throw new AssertionError(e);
                }
            }
        }
        return out;
    }

    /** Runs a property over every case (or the one seed asked for), counting outcomes; a failure names its seed. */
    static void forAll(String property, Consumer<Case> check) {
        Map<String, Integer> outcomes = new TreeMap<>();
        long base = property.hashCode() * 1_000_003L;
        for (int i = 0; i < (ONE_SEED != null ? 1 : CASES); i++) {
            long seed = ONE_SEED != null ? ONE_SEED : base + i;
            Case c = new Case(new SplittableRandom(seed), outcomes);
            try {
                check.accept(c);
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError(property + " fails for seed " + seed + " (-Dblip2.fuzz.seed=" + seed + "): " + e, e);
            }
        }
        System.out.println(property + ", " + (ONE_SEED != null ? 1 : CASES) + " cases: " + outcomes);
    }

    /** One case: its random source, and where to count how it ended. */
    record Case(SplittableRandom r, Map<String, Integer> outcomes) {
        void ended(String outcome) {
            outcomes.merge(outcome, 1, Integer::sum);
        }

        <T> T pick(List<T> options) {
            return options.get(r.nextInt(options.size()));
        }

        boolean chance(int inN) {
            return r.nextInt(inN) == 0;
        }
    }

    // ---- generators

    static final List<String> UNITS = List.of("a cat ", "\ud800", "\udc00", "😀", "\u0000", "\u2028", "<image>", "</s>", "\u0301",
            "x", " ", "Question:", "\uffff", "ﷺ", "\r\n");

    /** Any text: random UTF-16 units (surrogate halves, controls and separators among them), a unit repeated up to 60,000 characters, or a plain one. */
    static String text(Case c) {
        return switch (c.r().nextInt(4)) {
            case 0 -> {
                StringBuilder b = new StringBuilder();
                for (int i = c.r().nextInt(300); i > 0; i--) {
                    b.append((char) (c.chance(3) ? c.r().nextInt(0x80) : c.r().nextInt(0x10000)));
                }
                yield b.toString();
            }
            case 1, 2 -> {
                String u = c.pick(UNITS);
                yield u.repeat(Math.max(1, (1 + c.r().nextInt(60_000)) / u.length()));
            }
            default -> c.pick(List.of("", " ", "what color are the shapes?", "a photo of"));
        };
    }

    /** Any JSON value: text, numbers at the edges, booleans, null, containers. */
    static JsonNode anyValue(Case c) {
        return switch (c.r().nextInt(6)) {
            case 0 -> F.textNode(text(c));
            case 1 -> F.numberNode(c.r().nextInt());
            case 2 -> F.numberNode(c.r().nextDouble(-1e6, 1e6));
            case 3 -> F.numberNode(c.pick(List.of(1e-300, -1e-300, 1e300, Double.MAX_VALUE, Double.MIN_VALUE, 0.0, -0.0, 1e-5, 1e5)));
            case 4 -> F.numberNode(c.r().nextLong());
            default -> c.pick(List.of(F.booleanNode(true), F.nullNode(), F.arrayNode(), F.objectNode()));
        };
    }

    /** A field's value: absent (null), valid (most often), or one in {@code hostile} at the edge of its range or of any kind. */
    static JsonNode field(Case c, JsonNode valid, int hostile) {
        int k = c.r().nextInt(hostile + 3);
        return k < 3 ? null : k < hostile + 1 ? valid : k == hostile + 1 ? F.numberNode(c.pick(List.of(1e-300, 1e-5, 1e-4, 1e4, 1e5, 1e300,
                Double.MAX_VALUE, Double.MIN_VALUE, 0.0, -1.0))) : anyValue(c);
    }

    /**
     * Generation parameters by transformers' names, each field absent, valid, extreme or of another type (a field
     * is hostile once in {@code hostile / 2}).
     */
    static ObjectNode params(Case c, int hostile) {
        SplittableRandom r = c.r();
        ObjectNode o = F.objectNode();
        put(o, "do_sample", field(c, F.booleanNode(r.nextInt(3) != 0), hostile));
        put(o, "temperature", field(c, F.numberNode(r.nextDouble(1e-4, 20)), hostile));
        put(o, "top_k", field(c, F.numberNode(r.nextInt(0, 80)), hostile));
        put(o, "top_p", field(c, F.numberNode(r.nextDouble(1e-9, 1)), hostile));
        put(o, "repetition_penalty", field(c, F.numberNode(r.nextDouble(1e-4, 1e4)), hostile));
        put(o, "max_new_tokens", field(c, F.numberNode(r.nextInt(1, 21)), hostile));
        put(o, "min_new_tokens", field(c, F.numberNode(r.nextInt(0, 9)), hostile));
        put(o, "num_beams", field(c, F.numberNode(r.nextInt(4) == 0 ? 2 : 1), hostile));
        put(o, "length_penalty", field(c, F.numberNode(r.nextDouble(-100, 100)), hostile));
        put(o, "seed", field(c, F.numberNode(r.nextInt()), hostile));
        if (c.chance(20)) {
            o.set("beams", anyValue(c)); // an unknown name
        }
        return o;
    }

    /** A JSON request whose every field may be valid, absent, of another type, or hostile. */
    static ObjectNode request(Case c) {
        ObjectNode o = F.objectNode();
        put(o, "task", c.chance(9) ? anyValue(c) : F.textNode(c.pick(List.of("caption", "vqa", "match", "embed", "CAPTION "))));
        put(o, "image", c.chance(12) ? anyValue(c) : F.textNode(c.pick(List.of(PNG, PNG, PNG, "data:image/png;base64," + PNG, "***", ""))));
        switch (c.r().nextInt(10)) {
            case 0, 1, 2, 3 -> { }
            case 4, 5, 6, 7 -> o.put("id", randomId(c));
            case 8 -> o.put("id", text(c));
            default -> o.set("id", anyValue(c));
        }
        for (String t : List.of("prompt", "question")) {
            switch (c.r().nextInt(12)) {
                case 0, 1, 2, 3 -> { }
                case 4, 5, 6, 7 -> o.put(t, c.pick(List.of("a photo of", "what color are the shapes?", "how many?")));
                case 8, 9, 10 -> o.put(t, text(c));
                default -> o.set(t, anyValue(c));
            }
        }
        switch (c.r().nextInt(8)) {
            case 0, 1, 2 -> { }
            case 7 -> o.set("texts", anyValue(c));
            default -> {
                ArrayNode a = o.putArray("texts");
                for (int i = 1 + c.r().nextInt(3); i > 0; i--) {
                    a.add(text(c));
                }
            }
        }
        switch (c.r().nextInt(9)) {
            case 0, 1 -> { }
            case 8 -> o.set("params", anyValue(c));
            default -> o.set("params", params(c, 14));
        }
        switch (c.r().nextInt(10)) {
            case 0, 1, 2, 3, 4, 5 -> { }
            case 9 -> o.set("deadline_ms", anyValue(c));
            default -> o.put("deadline_ms", c.r().nextInt(1, 600_001));
        }
        return o;
    }

    static String randomId(Case c) {
        String alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@ ";
        StringBuilder b = new StringBuilder();
        for (int i = 1 + c.r().nextInt(300); i > 0; i--) {
            b.append(alphabet.charAt(c.r().nextInt(alphabet.length())));
        }
        return b.toString();
    }

    static byte[] bytes(Case c, int max) {
        byte[] b = new byte[c.r().nextInt(max + 1)];
        c.r().nextBytes(b);
        return b;
    }

    /** A Kafka record of any shape: key, value and headers each null, random, plausible or hostile. */
    static ConsumerRecord<byte[], byte[]> record(Case c) {
        byte[] key = switch (c.r().nextInt(3)) {
            case 0 -> null;
            case 1 -> bytes(c, 40);
            default -> text(c).getBytes(StandardCharsets.UTF_8);
        };
        byte[] value = switch (c.r().nextInt(6)) {
            case 0 -> null;
            case 1 -> bytes(c, 200);
            case 2, 3, 4 -> request(c).toString().getBytes(StandardCharsets.UTF_8);
            default -> Base64.getDecoder().decode(PNG);
        };
        ConsumerRecord<byte[], byte[]> r = new ConsumerRecord<>("blip2.requests", 2, c.r().nextLong(0, 1L << 40), key, value);
        for (int i = c.r().nextInt(4); i > 0; i--) {
            byte[] v = switch (c.r().nextInt(6)) {
                case 0 -> null;
                case 1 -> bytes(c, 30);
                case 2, 3 -> c.pick(List.of("caption", "vqa", "match", "embed", "true", "[\"a cat\"]", "{\"max_new_tokens\":3}", "what?",
                        "1500", "id-1")).getBytes(StandardCharsets.UTF_8);
                default -> text(c).getBytes(StandardCharsets.UTF_8);
            };
            r.headers().add(c.pick(HEADERS), v);
        }
        return r;
    }

    static void put(ObjectNode o, String name, JsonNode v) {
        if (v != null) {
            o.set(name, v);
        }
    }

    // ---- properties

    @Test
    void theTokenizerSeesOnlyBoundedTextAndEveryTextIsTokenizedOrRefused() {
        forAll("the tokenizer boundary", c -> {
            String text = text(c);
            Task task = c.pick(List.of(Task.CAPTION, Task.VQA, Task.MATCH));
            long bound = task.generates() ? TEXTS.maxPromptBytes() : TEXTS.maxTextBytes();
            long bytes = utf8(text);
            boolean lone = hasLoneSurrogate(text);
            try {
                RequestTexts.Encoded e = TEXTS.encode(task, task == Task.CAPTION ? text : null, task == Task.VQA ? text : null,
                        task.generates() ? null : List.of(text), GenerationParams.greedy(4));
                assertTrue(bytes <= bound, "a text over its byte bound never reaches the tokenizer: " + bytes + " > " + bound);
                assertFalse(lone, "a lone surrogate never reaches the tokenizer");
                if (task.generates()) {
                    assertTrue(e.promptIds().length <= CONFIG.inference().maxPromptTokens());
                    for (int id : e.promptIds()) {
                        assertTrue(id >= 0 && id < VOCAB, "an id in the vocabulary: " + id);
                    }
                } else {
                    assertEquals(1, e.textIds().size());
                }
                c.ended("tokenized");
            } catch (RequestError err) {
                assertRefusal(err);
                if (bytes > bound && !lone) {
                    assertEquals(RequestError.PROMPT_TOO_LONG, err.code());
                }
                if (lone && bytes <= bound) {
                    assertEquals(RequestError.INVALID_REQUEST, err.code());
                }
                c.ended(err.code());
            }
        });
    }

    @Test
    void everyKafkaRecordIsAJobOrARefusalWithAReason() {
        forAll("Kafka records", c -> jobOrRefusal(c, () -> DECODER.decodeRecord(record(c), 0)));
    }

    @Test
    void everyJsonRequestIsAJobOrARefusalWithAReason() {
        forAll("JSON requests", c -> jobOrRefusal(c, () -> DECODER.validate(DECODER.fromJson(
                request(c).toString().getBytes(StandardCharsets.UTF_8), null), 0)));
    }

    /** Decoding gives a job that keeps every bound, or a refusal with a documented code and the request's fault. */
    static void jobOrRefusal(Case c, java.util.function.Supplier<InferenceJob> decode) {
        try {
            InferenceJob job = decode.get();
            assertJob(job);
            c.ended("job " + job.task().wireName());
        } catch (RequestError e) {
            assertRefusal(e);
            c.ended(e.code());
        }
    }

    @Test
    void acceptedParametersNeverFeedTheModelATokenOutsideItsVocabulary() {
        forAll("generation parameters", c -> {
            GenerationParams p;
            try {
                p = DECODER.params(params(c, 60));
            } catch (RequestError e) {
                assertRefusal(e);
                c.ended("refused");
                return;
            }
            if (p.numBeams() > 1) {
                p = p.toBuilder().numBeams(1).build(); // beams run as groups of their own; rows here
            }
            int max = Math.min(p.maxNewTokens(), 8);
            GenerationParams params = p.toBuilder().maxNewTokens(max).minNewTokens(Math.min(p.minNewTokens(), max)).build();
            int rows = 3;
            int[] finished = new int[1];
            int[] failed = new int[1];
            List<RowListener> listeners = new ArrayList<>();
            for (int i = 0; i < rows; i++) {
                listeners.add(new RowListener() {
                    @Override
                    public void onToken(int index, int tokenId, String text) {
                        assertTrue(tokenId >= 0 && tokenId < WildSession.V, "a token of the vocabulary: " + tokenId);
                    }

                    @Override
                    public void onFinish(GenerationResult g) {
                        finished[0]++;
                    }

                    @Override
                    public void onError(RuntimeException cause) {
                        assertTrue(cause instanceof RowFailure, "a row fails alone, saying why: " + cause);
                        failed[0]++;
                    }
                });
            }
            try (ContinuousBatch batch = new ContinuousBatch(2)) {
                batch.add(new WildSession(rows, c.r().nextLong()), new int[][] {{0, 5}, {0}, {0, 9, 9}}, List.of(params, params, params),
                        listeners, 0);
                while (!batch.isEmpty()) {
                    batch.step();
                }
            }
            assertEquals(rows, finished[0] + failed[0], "every row ends once, a result or its own failure");
            c.ended((params.doSample() ? "sampled" : "greedy") + (failed[0] > 0 ? ", a row failed alone" : ", all rows finished"));
        });
    }

    /** A session of V-token logits, mostly sane, some near float32's end, NaN, or all -inf but one; it checks every token it is fed. */
    static final class WildSession implements DecoderSession {
        static final int V = 64;
        final SplittableRandom random;
        int rows;

        WildSession(int rows, long seed) {
            this.rows = rows;
            this.random = new SplittableRandom(seed);
        }

        float[][] logits() {
            float[][] out = new float[rows][V];
            for (float[] row : out) {
                int kind = random.nextInt(10) < 7 ? 0 : 1 + random.nextInt(4);
                for (int v = 0; v < V; v++) {
                    row[v] = switch (kind) {
                        case 0 -> (float) random.nextGaussian() * 5;
                        case 1 -> (float) (random.nextDouble() * 2e38 - 1e38);
                        case 2 -> v == 7 ? 0f : Float.NEGATIVE_INFINITY;
                        case 3 -> (float) random.nextGaussian() * 1e-30f;
                        default -> random.nextInt(10) == 0 ? Float.NaN : (float) random.nextGaussian();
                    };
                }
            }
            return out;
        }

        @Override public int rows() { return rows; }
        @Override public int vocabSize() { return V; }
        @Override public float[][] promptLogits() { return logits(); }

        @Override
        public float[][] step(int[] tokens) {
            assertEquals(rows, tokens.length);
            for (int t : tokens) {
                assertTrue(t >= 0 && t < V, "only tokens of the vocabulary reach the model: " + t);
            }
            return logits();
        }

        @Override
        public void reorder(int[] kept) {
            assertTrue(kept.length >= 1);
            rows = kept.length;
        }

        @Override
        public void merge(DecoderSession other) {
            rows += other.rows();
        }

        @Override public void close() {}
    }

    // ---- what every outcome must be

    static void assertJob(InferenceJob job) {
        assertNotNull(job.id());
        assertTrue(!job.id().isEmpty() && job.id().length() <= RequestDecoder.MAX_ID_CHARS, job.id());
        job.id().chars().forEach(ch -> assertFalse(Character.isISOControl(ch), "an id without control characters"));
        assertFalse(hasLoneSurrogate(job.id()));
        if (job.task().generates()) {
            assertNotNull(job.generation().promptIds());
            assertTrue(job.generation().promptIds().length <= CONFIG.inference().maxPromptTokens());
            GenerationParams p = job.generation().params();
            assertTrue(p.temperature() >= GenerationParams.MIN_SCALE && p.temperature() <= GenerationParams.MAX_SCALE);
            assertTrue(p.maxNewTokens() >= 1 && p.maxNewTokens() <= CONFIG.inference().maxNewTokensCap());
        } else {
            assertNotNull(job.retrieval().textIds());
            assertEquals(job.retrieval().texts().size(), job.retrieval().textIds().size());
        }
    }

    static void assertRefusal(RequestError e) {
        assertTrue(CODES.contains(e.code()), "a documented code: " + e.code());
        String m = e.getMessage();
        assertTrue(m != null && !m.isBlank(), "a refusal says why");
        assertTrue(m.length() <= 1000, "a bounded reason: " + m.length());
        assertFalse(m.contains("Exception") || m.contains("io.blip2stream") || m.contains("weight"), "the request's fault, not ours: " + m);
    }

    /** UTF-8 bytes, a lone surrogate counted as 3 (as the bound counts it before refusing it). */
    static long utf8(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            if (ch < 0x80) {
                n += 1;
            } else if (ch < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(ch) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                n += 4;
                i++;
            } else {
                n += 3;
            }
        }
        return n;
    }

    static boolean hasLoneSurrogate(String s) {
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            if (Character.getType(cp) == Character.SURROGATE) {
                return true;
            }
            i += Character.charCount(cp);
        }
        return false;
    }
}
