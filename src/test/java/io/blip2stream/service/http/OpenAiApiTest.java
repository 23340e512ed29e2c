package io.blip2stream.service.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.Fixtures;
import io.blip2stream.service.ServiceHarness;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The OpenAI-compatible API over plain HTTP against the whole service: the shapes OpenAI's clients read (models,
 * completions, chunks ending in [DONE], usage, errors), what a conversation asks, stop strings, and the refusals.
 * {@code OpenAiClientsTest} drives the same API with the real clients.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OpenAiApiTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String TOKEN = "openai-test-token";
    static final String MODEL = "blip2-opt-tiny";

    @TempDir
    static Path tmp;
    ServiceHarness harness;
    HttpClient client;
    String base;

    @BeforeAll
    void start() throws Exception {
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("http.auth_tokens", TOKEN));
        base = "http://127.0.0.1:" + harness.service.httpPort();
        client = HttpClient.newHttpClient();
    }

    @AfterAll
    void stop() throws Exception {
        harness.close();
    }

    static String dataUrl(int image) {
        return "data:image/png;base64," + Base64.getEncoder().encodeToString(Fixtures.image(MODEL, image));
    }

    /** A chat completion request: one user message with the image and, unless null, a text part. */
    static ObjectNode chat(int image, String text, int maxTokens) {
        ObjectNode o = JSON.createObjectNode().put("model", MODEL).put("max_tokens", maxTokens);
        ObjectNode user = o.putArray("messages").addObject().put("role", "user");
        var parts = user.putArray("content");
        if (text != null) {
            parts.addObject().put("type", "text").put("text", text);
        }
        parts.addObject().put("type", "image_url").putObject("image_url").put("url", dataUrl(image));
        return o;
    }

    HttpResponse<String> post(String path, Object body, String token) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString()));
        if (token != null) {
            b.header("Authorization", "Bearer " + token);
        }
        return client.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** Our own API's answer to the same question: what the chat completion must say. */
    JsonNode ours(String path, int image, String question) throws Exception {
        ObjectNode o = JSON.createObjectNode().put("image", Base64.getEncoder().encodeToString(Fixtures.image(MODEL, image)));
        if (question != null) {
            o.put("question", question);
        }
        o.putObject("params").put("max_new_tokens", 12);
        HttpResponse<String> r = post(path, o, TOKEN);
        assertEquals(200, r.statusCode(), r.body());
        io.blip2stream.service.protocol.RecordSchemas.assertValid(question == null ? "caption" : "answer", r.body(), path + "'s result");
        return JSON.readTree(r.body());
    }

    @Test
    void theRecordsSchemasAreServedWithoutAToken() throws Exception {
        HttpResponse<String> list = client.send(HttpRequest.newBuilder(URI.create(base + "/v1/schemas")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, list.statusCode(), list.body());
        List<String> names = new ArrayList<>();
        JSON.readTree(list.body()).get("data").forEach(d -> names.add(d.get("name").asText()));
        assertEquals(io.blip2stream.service.protocol.Schemas.NAMES, names);
        for (String name : names) {
            HttpResponse<byte[]> one = client.send(HttpRequest.newBuilder(URI.create(base + "/v1/schemas/" + name)).build(),
                    HttpResponse.BodyHandlers.ofByteArray());
            assertEquals(200, one.statusCode());
            assertEquals("application/schema+json", one.headers().firstValue("content-type").orElse(""));
            org.junit.jupiter.api.Assertions.assertArrayEquals(io.blip2stream.service.protocol.Schemas.bytes(name), one.body(), name);
        }
        for (String missing : List.of("nothing", "..%2Fapplication", "request.json")) {
            HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(base + "/v1/schemas/" + missing)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(404, r.statusCode(), missing + ": " + r.body());
            assertEquals("not_found", JSON.readTree(r.body()).get("error").get("code").asText());
        }
    }

    /** The JSON of each {@code data:} line of an event stream, and whether it ended with [DONE]. */
    static List<JsonNode> chunks(String body, boolean[] done) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (String block : body.split("\n\n")) {
            if (block.isBlank()) {
                continue;
            }
            assertTrue(block.startsWith("data: "), block);
            String data = block.substring("data: ".length());
            if (data.equals("[DONE]")) {
                done[0] = true;
            } else {
                assertFalse(done[0], "nothing after [DONE]");
                out.add(JSON.readTree(data));
            }
        }
        return out;
    }

    @Test
    void modelsListsTheLoadedCheckpoints() throws Exception {
        HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(base + "/v1/models"))
                .header("Authorization", "Bearer " + TOKEN).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        JsonNode m = JSON.readTree(r.body());
        assertEquals("list", m.get("object").asText());
        List<String> ids = new ArrayList<>();
        m.get("data").forEach(x -> {
            assertEquals("model", x.get("object").asText());
            ids.add(x.get("id").asText());
        });
        assertEquals(List.of(MODEL, "blip2-itm-tiny"), ids);
    }

    @Test
    void aQuestionIsAnsweredAsTheAskApiAnswersIt() throws Exception {
        HttpResponse<String> r = post("/v1/chat/completions", chat(0, "what color is the circle?", 12), TOKEN);
        assertEquals(200, r.statusCode(), r.body());
        JsonNode c = JSON.readTree(r.body());
        JsonNode ask = ours("/v1/ask", 0, "what color is the circle?");
        assertEquals("chat.completion", c.get("object").asText());
        assertEquals(MODEL, c.get("model").asText());
        assertTrue(c.get("id").asText().startsWith("chatcmpl-"));
        JsonNode choice = c.get("choices").get(0);
        assertEquals("assistant", choice.get("message").get("role").asText());
        assertEquals(ask.get("text").asText(), choice.get("message").get("content").asText(), "the vqa template, applied by the service");
        assertEquals("length", choice.get("finish_reason").asText());
        JsonNode usage = c.get("usage");
        assertEquals(12, usage.get("completion_tokens").asInt());
        // the visual prompt's queries and the template's tokens, as transformers counts the model's input ids
        assertEquals(Fixtures.cases(MODEL).get(1).get("model_input_ids").size(), usage.get("prompt_tokens").asInt());
        assertEquals(usage.get("prompt_tokens").asInt() + 12, usage.get("total_tokens").asInt());
    }

    @Test
    void anImageWithoutTextIsACaptionAndTheLastUserMessageAsks() throws Exception {
        JsonNode caption = ours("/v1/caption", 1, null);
        HttpResponse<String> r = post("/v1/chat/completions", chat(1, null, 12), TOKEN);
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(caption.get("text").asText(), JSON.readTree(r.body()).get("choices").get(0).get("message").get("content").asText());

        // a conversation: the image from the first turn, the question from the last user message, the rest ignored
        ObjectNode conv = chat(1, "describe it", 12);
        var messages = conv.withArray("messages");
        messages.insertObject(0).put("role", "system").put("content", "You are a helpful assistant.");
        messages.addObject().put("role", "assistant").put("content", "a picture");
        messages.addObject().put("role", "user").put("content", "what color is the circle?");
        JsonNode ask = ours("/v1/ask", 1, "what color is the circle?");
        r = post("/v1/chat/completions", conv, TOKEN);
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(ask.get("text").asText(), JSON.readTree(r.body()).get("choices").get(0).get("message").get("content").asText());
    }

    @Test
    void streamedChunksAddUpToTheAnswerThenUsageThenDone() throws Exception {
        JsonNode caption = ours("/v1/caption", 2, null);
        ObjectNode req = chat(2, null, 12).put("stream", true);
        req.putObject("stream_options").put("include_usage", true);
        HttpResponse<String> r = post("/v1/chat/completions", req, TOKEN);
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("content-type").orElse("").startsWith("text/event-stream"));
        boolean[] done = {false};
        List<JsonNode> chunks = chunks(r.body(), done);
        assertTrue(done[0], "ends with data: [DONE]");
        assertEquals("assistant", chunks.get(0).get("choices").get(0).get("delta").get("role").asText());
        StringBuilder text = new StringBuilder();
        String finish = null;
        for (JsonNode c : chunks.subList(0, chunks.size() - 1)) {
            assertEquals("chat.completion.chunk", c.get("object").asText());
            JsonNode choice = c.get("choices").get(0);
            text.append(choice.path("delta").path("content").asText(""));
            if (!choice.get("finish_reason").isNull()) {
                finish = choice.get("finish_reason").asText();
            }
        }
        assertEquals(caption.get("text").asText(), text.toString());
        assertEquals("length", finish);
        JsonNode last = chunks.get(chunks.size() - 1);
        assertEquals(0, last.get("choices").size(), "the usage chunk has no choices");
        assertEquals(12, last.get("usage").get("completion_tokens").asInt());
    }

    @Test
    void aStopStringEndsTheAnswerBeforeItAndStopsTheGeneration() throws Exception {
        String full = ours("/v1/caption", 2, null).get("text").asText(); // "... green green green ..."
        int at = full.indexOf(" green");
        assertTrue(at >= 0, full);
        ObjectNode req = chat(2, null, 12).put("stop", " green");
        JsonNode c = JSON.readTree(post("/v1/chat/completions", req, TOKEN).body());
        assertEquals(full.substring(0, at), c.get("choices").get(0).get("message").get("content").asText());
        assertEquals("stop", c.get("choices").get(0).get("finish_reason").asText());
        assertTrue(c.get("usage").get("completion_tokens").asInt() < 12, "the generation stopped early: " + c.get("usage"));

        // streamed, split over tokens: never shown, even in part
        req = chat(2, null, 12).put("stream", true);
        req.putArray("stop").add("reen gr").add("no such text");
        boolean[] done = {false};
        StringBuilder text = new StringBuilder();
        for (JsonNode x : chunks(post("/v1/chat/completions", req, TOKEN).body(), done)) {
            text.append(x.get("choices").get(0).path("delta").path("content").asText(""));
        }
        assertEquals(full.substring(0, full.indexOf("reen gr")), text.toString());
        assertTrue(done[0]);
    }

    @Test
    void refusalsAreOpenAiErrorsWithTheRightStatus() throws Exception {
        record Case(String why, Object body, String token, int status, String code) {}
        ObjectNode noImage = JSON.createObjectNode().put("model", MODEL);
        noImage.putArray("messages").addObject().put("role", "user").put("content", "hello");
        ObjectNode notAnImage = chat(0, "what?", 4);
        ((ObjectNode) notAnImage.get("messages").get(0).get("content").get(1).get("image_url"))
                .put("url", "data:image/png;base64," + Base64.getEncoder().encodeToString("not an image".getBytes()));
        ObjectNode byUrl = chat(0, "what?", 4);
        ((ObjectNode) byUrl.get("messages").get(0).get("content").get(1).get("image_url")).put("url", "http://169.254.169.254/latest");
        List<Case> cases = List.of(
                new Case("no token", chat(0, null, 4), null, 401, "unauthorized"),
                new Case("a wrong token", chat(0, null, 4), "wrong", 401, "unauthorized"),
                new Case("no image", noImage, TOKEN, 400, "missing_image"),
                new Case("not an image", notAnImage, TOKEN, 400, "invalid_image"),
                new Case("an image by URL, with images by URL off (the default)", byUrl, TOKEN, 400, "image_url_not_allowed"),
                new Case("another model", chat(0, null, 4).put("model", "gpt-4o"), TOKEN, 404, "model_not_found"),
                new Case("n of 2", chat(0, null, 4).put("n", 2), TOKEN, 400, "invalid_params"),
                new Case("too many tokens", chat(0, null, 100_000), TOKEN, 400, "invalid_params"),
                new Case("not JSON", "{\"model\":", TOKEN, 400, "invalid_json"),
                new Case("no messages", JSON.createObjectNode().put("model", MODEL), TOKEN, 400, "invalid_request"));
        for (Case c : cases) {
            HttpResponse<String> r = post("/v1/chat/completions", c.body(), c.token());
            assertEquals(c.status(), r.statusCode(), c.why() + ": " + r.body());
            JsonNode e = JSON.readTree(r.body()).get("error");
            assertEquals(c.code(), e.get("code").asText(), c.why());
            assertFalse(e.get("message").asText().isBlank(), c.why());
            assertEquals(c.status() == 401 ? "authentication_error" : "invalid_request_error",
                    e.get("type").asText(), c.why());
            assertTrue(e.has("param"), c.why());
            assertNull(e.get("param").textValue(), c.why());
        }
    }

    /** Each embedding of an answer, as floats (base64: little-endian float32). */
    static float[][] vectors(JsonNode answer) {
        JsonNode data = answer.get("data");
        float[][] out = new float[data.size()][];
        for (int i = 0; i < data.size(); i++) {
            assertEquals(i, data.get(i).get("index").asInt());
            JsonNode e = data.get(i).get("embedding");
            if (e.isTextual()) {
                java.nio.FloatBuffer fb = java.nio.ByteBuffer.wrap(Base64.getDecoder().decode(e.asText()))
                        .order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
                out[i] = new float[fb.remaining()];
                fb.get(out[i]);
            } else {
                out[i] = new float[e.size()];
                for (int k = 0; k < e.size(); k++) {
                    out[i][k] = e.get(k).floatValue();
                }
            }
        }
        return out;
    }

    static float[] flat(float[][] rows) {
        float[] out = new float[rows.length * rows[0].length];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(rows[i], 0, out, i * rows[i].length, rows[i].length);
        }
        return out;
    }

    @Test
    void embeddingsAreTransformersTextAndQueryEmbeddingsScoredAsItcScores() throws Exception {
        String itm = "blip2-itm-tiny";
        String text = "a blue square at the top"; // the fixture's img0_t1
        ObjectNode req = JSON.createObjectNode().put("model", itm).put("input", text);
        HttpResponse<String> r = post("/v1/embeddings", req, TOKEN);
        assertEquals(200, r.statusCode(), r.body());
        JsonNode answer = JSON.readTree(r.body());
        assertEquals("list", answer.get("object").asText());
        assertEquals(itm, answer.get("model").asText());
        assertTrue(answer.get("usage").get("prompt_tokens").asInt() > 0);
        float[][] t = vectors(answer);
        assertEquals(1, t.length);
        Fixtures.Tensor expectedText = Fixtures.tensor(itm, "img0_t1.text_embeds");
        assertTrue(Fixtures.maxAbsDiff(expectedText.values(), t[0]) < Fixtures.tolerance(expectedText.values()), "transformers' text embedding");

        // the image, as vLLM takes multimodal embeddings: a user message with an image part; base64 floats
        ObjectNode img = JSON.createObjectNode().put("model", itm).put("encoding_format", "base64");
        img.putArray("messages").addObject().put("role", "user").putArray("content").addObject().put("type", "image_url")
                .putObject("image_url").put("url", "data:image/png;base64," + Base64.getEncoder().encodeToString(
                        java.nio.file.Files.readAllBytes(Fixtures.dir(itm).resolve("image0.png"))));
        r = post("/v1/embeddings", img, TOKEN);
        assertEquals(200, r.statusCode(), r.body());
        float[][] q = vectors(JSON.readTree(r.body()));
        Fixtures.Tensor expectedImage = Fixtures.tensor(itm, "img0_t1.image_embeds"); // [1, Q, P]
        assertEquals(expectedImage.shape()[1], q.length, "one embedding per query");
        assertTrue(Fixtures.maxAbsDiff(expectedImage.values(), flat(q)) < Fixtures.tolerance(expectedImage.values()),
                "transformers' query embeddings");
        // scored as README says: the best over queries of the dot product is transformers' ITC score
        double best = Double.NEGATIVE_INFINITY;
        for (float[] query : q) {
            double dot = 0;
            for (int k = 0; k < query.length; k++) {
                dot += query[k] * t[0][k];
            }
            best = Math.max(best, dot);
        }
        double itc = 0;
        for (JsonNode c : Fixtures.expected(itm).get("cases")) {
            if (c.get("image").asInt() == 0 && c.get("text").asText().equals(text)) {
                itc = c.get("itc_score").asDouble();
            }
        }
        assertEquals(itc, best, 1e-4, "ITC: the best over queries");

        for (ObjectNode bad : List.of(JSON.createObjectNode().put("model", MODEL).put("input", text),
                JSON.createObjectNode().put("model", itm).put("input", text).put("dimensions", 8),
                (ObjectNode) JSON.readTree("{\"model\":\"" + itm + "\",\"input\":[[1,2,3]]}"),
                (ObjectNode) JSON.readTree("{\"model\":\"" + itm + "\",\"input\":[]}"),
                JSON.createObjectNode().put("model", itm).put("input", ""))) {
            HttpResponse<String> e = post("/v1/embeddings", bad, TOKEN);
            assertTrue(e.statusCode() == 404 || e.statusCode() == 400, e.body());
            assertFalse(JSON.readTree(e.body()).get("error").get("message").asText().isBlank());
        }
        ObjectNode many = JSON.createObjectNode().put("model", itm);
        var inputs = many.putArray("input");
        for (int i = 0; i <= harness.service.config().inference().maxTexts(); i++) {
            inputs.add("text " + i);
        }
        HttpResponse<String> tooMany = post("/v1/embeddings", many, TOKEN);
        assertEquals(400, tooMany.statusCode(), tooMany.body());
        assertEquals("too_many_texts", JSON.readTree(tooMany.body()).get("error").get("code").asText());
        assertEquals(401, post("/v1/embeddings", req, null).statusCode(), "the same bearer tokens as the rest of /v1");
        assertEquals(401, client.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).build(),
                HttpResponse.BodyHandlers.ofString()).statusCode());
    }
}
