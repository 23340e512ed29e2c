package io.blip2stream.service.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.errors.UnauthorizedException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import dev.langchain4j.data.message.ChatMessage;
import dev.langchain4j.data.message.ImageContent;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.langchain4j.model.openai.OpenAiStreamingChatModel;
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
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 23's done-when, with the real clients from Maven Central against the whole service: the official OpenAI
 * Java SDK (a chat completion with an image part; streamed, with usage; a wrong token and a non-image surfacing as
 * its exceptions) and LangChain4j's {@code OpenAiChatModel} and {@code OpenAiStreamingChatModel} with an
 * {@code ImageContent}. Each answer must be the one this service's own API gives for the same image and question.
 */
@Tag("broker")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OpenAiClientsTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String TOKEN = "clients-test-token";
    static final String MODEL = "blip2-opt-tiny";
    static final String QUESTION = "what color is the circle?";

    @TempDir
    static Path tmp;
    ServiceHarness harness;
    String base;
    OpenAIClient sdk;

    io.vertx.core.Vertx vertx;
    /** Where the fixtures' images are served, as an object store inside the network would serve them. */
    String images;

    @BeforeAll
    void start() throws Exception {
        vertx = io.vertx.core.Vertx.vertx();
        io.vertx.core.http.HttpServer server = vertx.createHttpServer().requestHandler(req -> {
            String n = req.path().replaceAll("[^0-9]", "");
            req.response().putHeader("content-type", "image/png").end(io.vertx.core.buffer.Buffer.buffer(Fixtures.image(MODEL, Integer.parseInt(n))));
        });
        server.listen(0, "127.0.0.1").toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        images = "http://localhost:" + server.actualPort();
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("http.auth_tokens", TOKEN, "images.allowed_hosts", "localhost",
                "images.allow_http", "true", "images.allow_private_addresses", "true"));
        base = "http://127.0.0.1:" + harness.service.httpPort() + "/v1";
        sdk = OpenAIOkHttpClient.builder().baseUrl(base).apiKey(TOKEN).maxRetries(0).build();
    }

    @AfterAll
    void stop() throws Exception {
        sdk.close();
        harness.close();
        vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    static String base64(int image) {
        return Base64.getEncoder().encodeToString(Fixtures.image(MODEL, image));
    }

    /** This service's own answer ({@code /v1/caption} or {@code /v1/ask}), 12 tokens. */
    String ours(int image, String question) throws Exception {
        ObjectNode o = JSON.createObjectNode().put("image", base64(image));
        if (question != null) {
            o.put("question", question);
        }
        o.putObject("params").put("max_new_tokens", 12);
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(base + (question == null ? "/caption" : "/ask")))
                .header("Authorization", "Bearer " + TOKEN).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(o.toString())).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        JsonNode result = JSON.readTree(r.body());
        return result.get("text").asText();
    }

    static ChatCompletionCreateParams.Builder sdkParams(int image, String question) {
        List<ChatCompletionContentPart> parts = new ArrayList<>();
        if (question != null) {
            parts.add(ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text(question).build()));
        }
        parts.add(ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url("data:image/png;base64," + base64(image)).build()).build()));
        return ChatCompletionCreateParams.builder().model(MODEL).addUserMessageOfArrayOfContentParts(parts).maxCompletionTokens(12);
    }

    @Test
    void theOpenAiSdkGetsAnAnswerAndACaption() throws Exception {
        ChatCompletion answer = sdk.chat().completions().create(sdkParams(0, QUESTION).build());
        assertEquals(ours(0, QUESTION), answer.choices().get(0).message().content().orElseThrow());
        assertEquals(12, answer.usage().orElseThrow().completionTokens());
        assertEquals(ChatCompletion.Choice.FinishReason.LENGTH, answer.choices().get(0).finishReason());

        ChatCompletion caption = sdk.chat().completions().create(sdkParams(1, null).build());
        assertEquals(ours(1, null), caption.choices().get(0).message().content().orElseThrow());
        assertEquals(MODEL, caption.model());
    }

    @Test
    void theOpenAiSdkStreamsWithUsage() throws Exception {
        StringBuilder text = new StringBuilder();
        long completionTokens = -1;
        int chunks = 0;
        try (StreamResponse<ChatCompletionChunk> stream = sdk.chat().completions().createStreaming(sdkParams(2, QUESTION)
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            for (ChatCompletionChunk c : (Iterable<ChatCompletionChunk>) stream.stream()::iterator) {
                boolean[] content = {false};
                c.choices().forEach(ch -> ch.delta().content().filter(x -> !x.isEmpty()).ifPresent(x -> {
                    text.append(x);
                    content[0] = true;
                }));
                chunks += content[0] ? 1 : 0;
                if (c.usage().isPresent()) {
                    completionTokens = c.usage().get().completionTokens();
                }
            }
        }
        assertEquals(ours(2, QUESTION), text.toString());
        assertEquals(12, completionTokens, "the usage chunk");
        assertTrue(chunks >= 2, "streamed in pieces as the tokens came, not at once: " + chunks + " chunks with text");
    }

    @Test
    void theOpenAiSdkSurfacesAWrongTokenAndANonImage() {
        OpenAIClient wrong = OpenAIOkHttpClient.builder().baseUrl(base).apiKey("not-the-token").maxRetries(0).build();
        try {
            UnauthorizedException e = assertThrows(UnauthorizedException.class, () -> wrong.chat().completions().create(sdkParams(0, null).build()));
            assertEquals(401, e.statusCode());
            assertEquals("unauthorized", e.code().orElseThrow());
        } finally {
            wrong.close();
        }
        List<ChatCompletionContentPart> parts = List.of(ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder()
                        .url("data:image/png;base64," + Base64.getEncoder().encodeToString("just text".getBytes())).build()).build()));
        BadRequestException e = assertThrows(BadRequestException.class, () -> sdk.chat().completions().create(
                ChatCompletionCreateParams.builder().model(MODEL).addUserMessageOfArrayOfContentParts(parts).build()));
        assertEquals("invalid_image", e.code().orElseThrow());
        assertTrue(e.getMessage().contains("image"), e.getMessage());
    }

    @Test
    void bothClientsSendImagesByUrl() throws Exception {
        OpenAiChatModel chat = OpenAiChatModel.builder().baseUrl(base).apiKey(TOKEN).modelName(MODEL).maxTokens(12)
                .timeout(Duration.ofSeconds(60)).maxRetries(0).build();
        ChatResponse r = chat.chat(UserMessage.from(TextContent.from(QUESTION), ImageContent.from(URI.create(images + "/image0.png"))));
        assertEquals(ours(0, QUESTION), r.aiMessage().text(), "LangChain4j's ImageContent by URL");
        ChatCompletion c = sdk.chat().completions().create(ChatCompletionCreateParams.builder().model(MODEL).maxCompletionTokens(12)
                .addUserMessageOfArrayOfContentParts(List.of(ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder()
                        .imageUrl(ChatCompletionContentPartImage.ImageUrl.builder().url(images + "/image2.png").build()).build())))
                .build());
        assertEquals(ours(2, null), c.choices().get(0).message().content().orElseThrow(), "the OpenAI SDK's image_url by URL");
    }

    @Test
    void langChain4jChatModelsReadAnImageContent() throws Exception {
        UserMessage question = UserMessage.from(TextContent.from(QUESTION), ImageContent.from(base64(1), "image/png"));
        OpenAiChatModel chat = OpenAiChatModel.builder().baseUrl(base).apiKey(TOKEN).modelName(MODEL).maxTokens(12)
                .timeout(Duration.ofSeconds(60)).maxRetries(0).build();
        ChatResponse r = chat.chat(question);
        assertEquals(ours(1, QUESTION), r.aiMessage().text());
        assertEquals(12, r.tokenUsage().outputTokenCount());

        OpenAiStreamingChatModel streaming = OpenAiStreamingChatModel.builder().baseUrl(base).apiKey(TOKEN).modelName(MODEL)
                .maxTokens(12).timeout(Duration.ofSeconds(60)).build();
        StringBuilder partial = new StringBuilder();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        streaming.chat(List.<ChatMessage>of(UserMessage.from(ImageContent.from(base64(2), "image/png"))), new StreamingChatResponseHandler() {
            @Override
            public void onPartialResponse(String s) {
                partial.append(s);
            }

            @Override
            public void onCompleteResponse(ChatResponse response) {
                done.complete(response);
            }

            @Override
            public void onError(Throwable error) {
                done.completeExceptionally(error);
            }
        });
        ChatResponse streamed = done.get(60, TimeUnit.SECONDS);
        String caption = ours(2, null);
        assertEquals(caption, partial.toString(), "a caption, streamed");
        assertEquals(caption, streamed.aiMessage().text());
    }

    @Test
    void theOpenAiSdkAndLangChain4jEmbedTextsAsTransformersDoes() {
        String itm = "blip2-itm-tiny";
        Fixtures.Tensor expected = Fixtures.tensor(itm, "img0_t1.text_embeds");
        List<Float> sdkVector = sdk.embeddings().create(com.openai.models.embeddings.EmbeddingCreateParams.builder().model(itm)
                .input("a blue square at the top").build()).data().get(0).embedding();
        float[] v = new float[sdkVector.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = sdkVector.get(i);
        }
        assertTrue(Fixtures.maxAbsDiff(expected.values(), v) < Fixtures.tolerance(expected.values()), "the SDK's embedding");

        dev.langchain4j.model.openai.OpenAiEmbeddingModel embeddings = dev.langchain4j.model.openai.OpenAiEmbeddingModel.builder()
                .baseUrl(base).apiKey(TOKEN).modelName(itm).maxRetries(0).build();
        float[] lc = embeddings.embed("a blue square at the top").content().vector();
        assertTrue(Fixtures.maxAbsDiff(expected.values(), lc) < Fixtures.tolerance(expected.values()), "LangChain4j's embedding");
    }
}
