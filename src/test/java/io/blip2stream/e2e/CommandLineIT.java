package io.blip2stream.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.model.Fixtures;
import io.blip2stream.model.weights.SafetensorsFile;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The packaged program, run with {@code java -jar target/blip2-stream.jar} exactly as the README says. */
@Tag("e2e")
class CommandLineIT {
    static final String FIXTURE = "blip2-opt-tiny";
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    record Run(int exit, String out, String err) {
        List<String> errLines() {
            List<String> l = new ArrayList<>();
            for (String s : err.split("\n")) {
                if (!s.isBlank()) {
                    l.add(s);
                }
            }
            return l;
        }
    }

    static Run run(String... args) throws Exception {
        return runWith(java.util.Map.of(), args);
    }

    /** {@link #run} with these environment variables added. */
    static Run runWith(java.util.Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-jar", System.getProperty("blip2.jar", "target/blip2-stream.jar")));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        Process p = pb.start();
        var out = p.getInputStream().readAllBytes();
        var err = p.getErrorStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        return new Run(p.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err, StandardCharsets.UTF_8));
    }

    static String model() {
        return Fixtures.model(FIXTURE).toString();
    }

    static String image(int i) {
        return Fixtures.dir(FIXTURE).resolve("image" + i + ".png").toString();
    }

    @Test
    void produceWithNoBrokerSaysSoInOneLineWithinItsTimeout() throws Exception {
        int port = io.blip2stream.TestPorts.free();
        long t0 = System.nanoTime();
        Run r = run("produce", "--bootstrap-servers", "localhost:" + port, "--task", "caption", "--image", image(0), "--timeout", "5");
        long s = (System.nanoTime() - t0) / 1_000_000_000;
        assertEquals(2, r.exit(), r.err());
        assertEquals(1, r.errLines().size(), "one line, no Kafka client log:\n" + r.err());
        assertTrue(r.err().contains("no Kafka broker at localhost:" + port + " within 5 s (is `serve` running?"), r.err());
        assertTrue(s < 25, "--timeout 5 is honoured (" + s + " s, with the JVM's start)");
    }

    @Test
    void captionJsonGivesTransformersIdsOnBothEngines() throws Exception {
        JsonNode c = Fixtures.cases(FIXTURE).get(0); // img0_p0: BOS only
        for (String engine : List.of("tensorflow", "pytorch")) {
            Run greedy = run("caption", "--model", model(), "--image", image(0), "--max-new-tokens", "12", "--json", "--engine", engine);
            assertEquals(0, greedy.exit(), greedy.err());
            String[] lines = greedy.out().strip().split("\n");
            assertEquals(1, lines.length, "one line of JSON: " + greedy.out());
            JsonNode o = JSON.readTree(lines[0]);
            assertEquals(c.get("greedy_new_tokens"), o.get("token_ids"), engine);
            assertEquals("length", o.get("finish_reason").asText());
            assertTrue(o.get("text").isTextual());
            for (String t : List.of("preprocess", "vision", "qformer", "prefill", "decode")) {
                assertTrue(o.get("timings").get(t).asDouble() >= 0, t);
            }
            Run beam = run("caption", "--model", model(), "--image", image(0), "--num-beams", "3", "--max-new-tokens", "8", "--json",
                    "--engine", engine);
            assertEquals(0, beam.exit(), beam.err());
            assertEquals(c.get("beam3_new_tokens"), JSON.readTree(beam.out().strip()).get("token_ids"), engine);
        }
    }

    @Test
    void askUsesTheVqaTemplate() throws Exception {
        JsonNode c = Fixtures.cases(FIXTURE).get(3); // img1_p1: "Question: what color is the circle? Answer:"
        Run r = run("ask", "--model", model(), "--image", image(1), "--question", "what color is the circle?",
                "--max-new-tokens", "12", "--json");
        assertEquals(0, r.exit(), r.err());
        assertEquals(c.get("greedy_new_tokens"), JSON.readTree(r.out().strip()).get("token_ids"));
        Run plain = run("ask", "--model", model(), "--image", image(1), "--question", "what color is the circle?",
                "--max-new-tokens", "12");
        assertEquals(0, plain.exit(), plain.err());
        assertTrue(plain.out().startsWith(" green"), "streams the text: " + plain.out());
    }

    @Test
    void flanT5CaptionAndAskGiveTransformersIdsWithoutTheDecoderStart() throws Exception {
        String t5 = "blip2-flant5-tiny";
        String dir = Fixtures.model(t5).toString();
        String img = Fixtures.dir(t5).resolve("image1.png").toString();
        List<JsonNode> cases = Fixtures.cases(t5);
        for (String engine : List.of("tensorflow", "pytorch")) {
            Run ask = run("ask", "--model", dir, "--image", img, "--question", "what color is the circle?", "--max-new-tokens", "12",
                    "--json", "--engine", engine);
            assertEquals(0, ask.exit(), ask.err());
            assertEquals(withoutFirst(cases.get(2).get("greedy_new_tokens")), JSON.readTree(ask.out().strip()).get("token_ids"), engine);
            Run beam = run("caption", "--model", dir, "--image", img, "--prompt", "a photo of", "--num-beams", "3",
                    "--max-new-tokens", "8", "--json", "--engine", engine);
            assertEquals(0, beam.exit(), beam.err());
            assertEquals(withoutFirst(cases.get(3).get("beam3_new_tokens")), JSON.readTree(beam.out().strip()).get("token_ids"), engine);
        }
    }

    static JsonNode withoutFirst(JsonNode ids) {
        var out = JSON.createArrayNode();
        for (int i = 1; i < ids.size(); i++) {
            out.add(ids.get(i));
        }
        return out;
    }

    @Test
    void matchPrintsItmAndItcInTheOrderGiven() throws Exception {
        String itm = "blip2-itm-tiny";
        JsonNode cases = Fixtures.expected(itm).get("cases");
        for (String engine : List.of("tensorflow", "pytorch")) {
            Run r = run("match", "--model", Fixtures.model(itm).toString(), "--image", Fixtures.dir(itm).resolve("image1.png").toString(),
                    "--text", "two cats laying on a couch", "--text", "a red circle on the left", "--json", "--engine", engine);
            assertEquals(0, r.exit(), r.err());
            String[] lines = r.out().strip().split("\n");
            assertEquals(1, lines.length);
            JsonNode results = JSON.readTree(lines[0]).get("results");
            assertEquals(2, results.size());
            JsonNode[] expected = {cases.get(5), cases.get(3)}; // image 1 with those texts
            for (int i = 0; i < 2; i++) {
                JsonNode got = results.get(i);
                assertEquals(expected[i].get("text").asText(), got.get("text").asText());
                assertEquals(expected[i].get("itm_match_probability").asDouble(), got.get("itm_probability").asDouble(), 1e-4);
                assertEquals(expected[i].get("itc_score").asDouble(), got.get("itc_score").asDouble(), 1e-4);
                assertEquals(expected[i].get("itm_logits").get(1).asDouble(), got.get("itm_logits").get(1).asDouble(), 1e-4);
            }
        }
    }

    @Test
    void embedOnARetrievalCheckpointWritesImageAndTextEmbeddings() throws Exception {
        String itm = "blip2-itm-tiny";
        Path imageOut = tmp.resolve("image.safetensors");
        Run r = run("embed", "--model", Fixtures.model(itm).toString(), "--image", Fixtures.dir(itm).resolve("image0.png").toString(),
                "--out", imageOut.toString());
        assertEquals(0, r.exit(), r.err());
        Path textOut = tmp.resolve("text.safetensors");
        r = run("embed", "--model", Fixtures.model(itm).toString(), "--text", "a blue square at the top", "--out", textOut.toString());
        assertEquals(0, r.exit(), r.err());
        try (SafetensorsFile fi = SafetensorsFile.open(imageOut); SafetensorsFile ft = SafetensorsFile.open(textOut)) {
            assertClose(Fixtures.tensor(itm, "img0_t1.image_embeds"), fi, "image_embeds");
            assertClose(Fixtures.tensor(itm, "img0_t1.text_embeds"), ft, "text_embeds");
        }
    }

    static void assertClose(Fixtures.Tensor expected, SafetensorsFile f, String name) {
        SafetensorsFile.Entry e = f.entries().get(name);
        assertEquals(java.util.Arrays.toString(expected.shape()), java.util.Arrays.toString(e.shape()), name);
        FloatBuffer fb = f.map(e).asFloatBuffer();
        float[] v = new float[fb.remaining()];
        fb.get(v);
        assertTrue(Fixtures.maxAbsDiff(expected.values(), v) < Fixtures.tolerance(expected.values()), name);
    }

    @Test
    void embedWritesTheImageSideTensors() throws Exception {
        Path out = tmp.resolve("e.safetensors");
        Run r = run("embed", "--model", model(), "--image", image(2), "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        try (SafetensorsFile f = SafetensorsFile.open(out)) {
            for (String t : List.of("pixel_values", "vision_last_hidden_state", "qformer_last_hidden_state", "language_projection")) {
                SafetensorsFile.Entry e = f.entries().get(t);
                Fixtures.Tensor expected = Fixtures.tensor(FIXTURE, "img2_p0." + t);
                assertEquals(java.util.Arrays.toString(expected.shape()), java.util.Arrays.toString(e.shape()), t);
                FloatBuffer fb = f.map(e).asFloatBuffer();
                float[] v = new float[fb.remaining()];
                fb.get(v);
                assertTrue(Fixtures.maxAbsDiff(expected.values(), v) < Fixtures.tolerance(expected.values()), t);
            }
        }
    }

    @Test
    void aScenarioFileRunsInProcessWithOverrides() throws Exception {
        // the scenario's options, then overrides (a later option wins): the workers' raw throughput, no Kafka
        Run r = run("load", "@load-tests/scenarios/caption-closed-8.args", "--requests", "12", "--concurrency", "4",
                "--warmup", "5", "--in-process", "--model", model(), "--json");
        assertEquals(0, r.exit(), r.err());
        String[] lines = r.out().trim().split("\n");
        JsonNode report = JSON.readTree(lines[lines.length - 1]);
        assertEquals(12, report.get("sent").asInt());
        assertEquals(12, report.get("answered").asInt());
        assertEquals(0, report.get("errors").asInt());
        assertEquals(12 * 16, report.get("tokens").asInt(), "16 tokens each, from the scenario's params; the warm-up's not counted");
        assertTrue(report.get("throughput").asDouble() > 0);
        assertTrue(report.get("p99").asDouble() >= report.get("p50").asDouble());
    }

    /**
     * Issue 24: the top-level help lists each command with a whole sentence; each command's help describes every
     * option; a misspelt command or option is named, with the name probably meant; a malformed --params says where,
     * in the service's words, not the JSON parser's.
     */
    @Test
    void helpIsWholeAndMisspellingsGetTheNameMeant() throws Exception {
        Run top = run("--help");
        assertEquals(0, top.exit(), top.err());
        String commands = top.out().substring(top.out().indexOf("Commands:"));
        java.util.Map<String, String> listed = new java.util.LinkedHashMap<>();
        String current = null;
        for (String line : commands.split("\n")) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^  (\\S+)\\s+(.*)$").matcher(line);
            if (m.matches()) {
                current = m.group(1);
                listed.put(current, m.group(2).strip());
            } else if (current != null && line.startsWith("     ") && !line.isBlank()) {
                listed.put(current, listed.get(current) + " " + line.strip());
            } else if (line.isBlank()) {
                current = null;
            }
        }
        assertTrue(listed.keySet().containsAll(List.of("serve", "caption", "ask", "produce", "load", "train", "evaluate", "certs")), listed.toString());
        listed.forEach((name, text) -> assertTrue(text.matches(".*[.)]$"), name + "'s summary is a whole sentence: " + text));
        for (String cmd : List.of("serve", "caption", "ask", "produce", "load", "train", "scenes", "synthetic")) {
            Run h = run(cmd, "--help");
            assertEquals(0, h.exit(), h.err());
            String[] lines = h.out().split("\n");
            for (int i = 0; i < lines.length; i++) {
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("^  (?:-\\w, |    )(--[\\w-]+)(?:=\\S+)?(.*)$").matcher(lines[i]);
                if (!m.matches() || lines[i].startsWith("Usage")) {
                    continue;
                }
                String text = m.group(2).strip();
                if (text.isEmpty() && i + 1 < lines.length && lines[i + 1].startsWith("       ") && !lines[i + 1].strip().startsWith("-")) {
                    text = lines[i + 1].strip();
                }
                assertFalse(text.isEmpty(), cmd + " " + m.group(1) + " has a description:\n" + h.out());
            }
        }
        Run misspelt = run("capton", "--image", image(0));
        assertEquals(2, misspelt.exit());
        assertEquals(List.of("error: unknown command 'capton'; did you mean 'caption'? (see --help)"), misspelt.errLines());
        Run option = run("caption", "--temprature", "0.7");
        assertEquals(2, option.exit());
        assertEquals(List.of("error: unknown option '--temprature' for caption; did you mean '--temperature'? (see caption --help)"),
                option.errLines());
        Run params = run("produce", "--task", "caption", "--image", image(0), "--params", "notjson", "--timeout", "3");
        assertEquals(2, params.exit());
        assertEquals(List.of("error: --params is not JSON: unexpected 'notjson' (text must be in double quotes) at line 1, "
                + "column 1 (write an object such as '{\"max_new_tokens\":12}')"), params.errLines());
        Run task = run("produce", "--task", "vqaa", "--image", image(0));
        assertEquals(List.of("error: --task must be caption, vqa, match or embed, not 'vqaa'; did you mean 'vqa'?"), task.errLines());
    }

    @Test
    void userErrorsAreOneLineOnStderrAndANonZeroExit() throws Exception {
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        Files.copy(Fixtures.model(FIXTURE).resolve("config.json"), empty.resolve("config.json"));
        Path notImage = Files.writeString(tmp.resolve("x.png"), "hello");
        List<String[]> cases = List.of(
                new String[] {"caption", "--model", model(), "--image", tmp.resolve("missing.png").toString()},
                new String[] {"caption", "--model", tmp.resolve("nowhere").toString(), "--image", image(0)},
                new String[] {"caption", "--model", empty.toString(), "--image", image(0)},
                new String[] {"caption", "--model", model(), "--image", notImage.toString()},
                new String[] {"caption", "--model", model(), "--image", image(0), "--frobnicate"},
                new String[] {"ask", "--model", model(), "--image", image(0)},
                new String[] {"caption", "--model", model(), "--image", image(0), "--top-p", "2"},
                new String[] {"embed", "--model", model(), "--image", image(0)},
                new String[] {"match", "--model", model(), "--image", image(0), "--text", "a"},
                new String[] {"caption", "--model", Fixtures.model("blip2-itm-tiny").toString(), "--image", image(0)},
                new String[] {"embed", "--model", model(), "--text", "a", "--out", tmp.resolve("x.safetensors").toString()},
                new String[] {"load", "--image", image(0), "--warmup", "-1", "--in-process", "--model", model()},
                new String[] {"load", "--image", image(0), "--warmup", "2", "--websocket", "ws://127.0.0.1:9/v1/stream"},
                new String[] {"caption", "--model", model(), "--image", image(0), "--dtype", "fp16"},
                new String[] {"match", "--model", Fixtures.model("blip2-itm-tiny").toString(), "--image", image(0), "--text", "a", "--dtype", "int4"},
                new String[] {"caption", "--model", model(), "--image", image(0), "--dtype", "int8", "--engine", "pytorch"});
        for (String[] args : cases) {
            Run r = run(args);
            assertNotEquals(0, r.exit(), String.join(" ", args));
            assertEquals(1, r.errLines().size(), String.join(" ", args) + " -> " + r.err());
            assertTrue(r.errLines().get(0).startsWith("error: "), r.err());
            assertEquals("", r.out().strip());
        }
    }

    /**
     * Issue 21: --dtype keeps the weights in bfloat16 or int8, and --stats says which. Run as a user runs the jar,
     * without --add-modules jdk.incubator.vector: the scalar kernels then compute the same greedy ids, and a note on
     * stderr says how to get the fast ones, except for bfloat16 where oneDNN multiplies it (no Vector API needed).
     */
    @Test
    void dtypeIsNamedInTheStatsAndRunsWithoutTheVectorModule() throws Exception {
        for (String dtype : List.of("bfloat16", "int8")) {
            Run r = run("caption", "--model", model(), "--image", image(0), "--max-new-tokens", "12", "--json", "--stats", "--dtype", dtype);
            assertEquals(0, r.exit(), r.err());
            assertTrue(r.err().contains(", dtype " + dtype), r.err());
            boolean scalar = dtype.equals("int8") || !io.blip2stream.model.nn.OneDnnWeight.available();
            assertEquals(scalar, r.err().contains("note: " + dtype + " weights on "), r.err());
            // int8 packed for oneDNN: its products there, one row by oneDNN too without the Vector API (slower)
            boolean packed = dtype.equals("int8") && io.blip2stream.model.nn.LowPrecisionWeight.int8Packed();
            assertTrue(!scalar || r.err().contains(packed ? "one row by oneDNN too" : "weights on weight streaming, scalar")
                    && r.err().contains("--add-modules jdk.incubator.vector"), r.err());
            assertFalse(r.err().contains("Warning: Versions of"), "JavaCPP's version check stays quiet: " + r.err());
            JsonNode out = new ObjectMapper().readTree(r.out());
            assertEquals(12, out.get("token_ids").size(), r.out());
        }
        // oneDNN turned off: bfloat16 is streamed from Java instead, and the note says why it is slower
        Run off = runWith(java.util.Map.of("BLIP2_ONEDNN", "off"), "caption", "--model", model(), "--image", image(0),
                "--max-new-tokens", "12", "--json", "--dtype", "bfloat16");
        assertEquals(0, off.exit(), off.err());
        assertTrue(off.err().contains("note: bfloat16 weights on weight streaming") && off.err().contains("no oneDNN (BLIP2_ONEDNN=off)"), off.err());
        assertEquals(12, new ObjectMapper().readTree(off.out()).get("token_ids").size(), off.out());
        Run bad = runWith(java.util.Map.of("BLIP2_ONEDNN", "maybe"), "caption", "--model", model(), "--image", image(0),
                "--max-new-tokens", "2", "--json", "--dtype", "bfloat16");
        assertEquals(0, bad.exit(), bad.err());
        assertTrue(bad.err().contains("BLIP2_ONEDNN must be auto or off, not 'maybe'"), bad.err());
        // auto on a float32 checkpoint: float32, no note
        Run auto = run("caption", "--model", model(), "--image", image(0), "--max-new-tokens", "2", "--stats");
        assertEquals(0, auto.exit(), auto.err());
        assertTrue(auto.err().contains(", dtype float32") && !auto.err().contains("note:"), auto.err());
    }

    static String read(Path p) throws IOException {
        return Files.readString(p);
    }
}
