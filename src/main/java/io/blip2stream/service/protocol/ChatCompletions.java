package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.RequestError;

import java.util.ArrayList;
import java.util.List;

/**
 * OpenAI's chat completions ({@code POST /v1/chat/completions}) and embeddings ({@code POST /v1/embeddings}) as
 * BLIP-2 requests, and BLIP-2's answers as chat completions, chunks and embeddings in OpenAI's shapes (errors:
 * {@link ErrorJson}). No Vert.x: the HTTP side is {@code service.http.OpenAiApi}.
 *
 * <p>Which image and which text a conversation asks about (BLIP-2 reads one image and one question, with no memory
 * of earlier turns): the image is the last {@code image_url} part of any user message; the text is the text of the
 * last user message (its string content, or its text parts joined by a space). With text, the request is a question
 * (vqa: the model family's template, {@code Question: {q} Answer:} or FlanT5's {@code Short answer:}, applied by the
 * service); without, a caption. System, assistant and tool messages are read for their shape only.
 *
 * <p>Parameters: {@code max_completion_tokens} (or the older {@code max_tokens}) is {@code max_new_tokens};
 * {@code temperature} above 0 samples at that temperature (absent or 0: greedy, the checkpoint's own default, unlike
 * OpenAI's 1); {@code top_p} samples from the nucleus; {@code seed} fixes the sampling; {@code stop} (a string or up to
 * 4) ends the answer before the first stop string; {@code n} must be 1; {@code stream} streams chunks, with a last
 * usage chunk when {@code stream_options.include_usage}. Fields OpenAI defines that change nothing here (user,
 * logprobs false, tool_choice none or auto, ...) are ignored; those that would make the answer something BLIP-2
 * cannot give are refused, naming the field ({@code response_format} other than text, a tool call required,
 * {@code logprobs}), as are unknown types of content part.
 */
public final class ChatCompletions {
    private ChatCompletions() {}

    /** OpenAI allows this many stop strings. */
    public static final int MAX_STOPS = 4;
    /** The longest stop string accepted, in characters. */
    public static final int MAX_STOP_CHARS = 200;

    /**
     * A chat completion request, as BLIP-2 reads it.
     *
     * @param model        the model asked for (checked against those loaded by the caller)
     * @param image        the image part: a {@code data:} URL, or another URL (images by reference)
     * @param question     the question (vqa), or null for a caption
     * @param params       the generation parameters, in this service's names ({@code max_new_tokens}, ...)
     * @param stop         stop strings (empty: none)
     * @param includeUsage streamed: a last chunk with the usage
     */
    public record Request(String model, String image, String question, ObjectNode params, boolean stream, boolean includeUsage,
                          List<String> stop) {
        public String task() {
            return question == null ? "caption" : "vqa";
        }
    }

    /**
     * Reads a chat completion request.
     *
     * @throws RequestError invalid_request (with what is wrong and where), missing_image or invalid_params
     */
    public static Request parse(JsonNode body) {
        return parse(body, true);
    }

    /** @param imageRequired a chat answers about an image; an embeddings request may have texts alone */
    private static Request parse(JsonNode body, boolean imageRequired) {
        if (body == null || !body.isObject()) {
            throw new RequestError(RequestError.INVALID_JSON, "the body must be a JSON object (a chat completion request)");
        }
        JsonNode model = body.get("model");
        if (model == null || !model.isTextual() || model.asText().isBlank()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "model is required: one of the ids GET /v1/models lists");
        }
        JsonNode messages = body.get("messages");
        if (messages == null || !messages.isArray() || messages.isEmpty()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "messages must be a non-empty array");
        }
        String image = null;
        String question = null;
        boolean sawUser = false;
        for (int i = 0; i < messages.size(); i++) {
            JsonNode m = messages.get(i);
            String where = "messages[" + i + "]";
            if (!m.isObject() || !m.path("role").isTextual()) {
                throw new RequestError(RequestError.INVALID_REQUEST, where + " must be an object with a role");
            }
            String role = m.get("role").asText();
            if (!List.of("system", "developer", "user", "assistant", "tool").contains(role)) {
                throw new RequestError(RequestError.INVALID_REQUEST, where + ".role " + ClientText.quote(role)
                        + " is not one of system, developer, user, assistant, tool");
            }
            if (!role.equals("user")) {
                continue;
            }
            sawUser = true;
            StringBuilder text = new StringBuilder();
            JsonNode content = m.get("content");
            if (content != null && content.isTextual()) {
                text.append(content.asText());
            } else if (content != null && content.isArray()) {
                for (int k = 0; k < content.size(); k++) {
                    JsonNode part = content.get(k);
                    String at = where + ".content[" + k + "]";
                    String type = part.path("type").asText("");
                    switch (type) {
                        case "text" -> {
                            if (!part.path("text").isTextual()) {
                                throw new RequestError(RequestError.INVALID_REQUEST, at + ".text must be a string");
                            }
                            if (!text.isEmpty()) {
                                text.append(' ');
                            }
                            text.append(part.get("text").asText());
                        }
                        case "image_url" -> {
                            JsonNode url = part.path("image_url");
                            JsonNode u = url.isTextual() ? url : url.path("url");
                            if (!u.isTextual() || u.asText().isBlank()) {
                                throw new RequestError(RequestError.INVALID_REQUEST, at + ".image_url.url must be a URL");
                            }
                            image = u.asText();
                        }
                        default -> throw new RequestError(RequestError.INVALID_REQUEST, at + ".type " + ClientText.quote(type)
                                + " is not text or image_url (BLIP-2 reads one image and a text)");
                    }
                }
            } else if (content != null && !content.isNull()) {
                throw new RequestError(RequestError.INVALID_REQUEST, where + ".content must be a string or an array of parts");
            }
            String t = text.toString().strip();
            question = t.isEmpty() ? null : t; // the last user message's text
        }
        if (!sawUser) {
            throw new RequestError(RequestError.INVALID_REQUEST, "messages has no user message");
        }
        if (image == null && imageRequired) {
            throw new RequestError(RequestError.MISSING_IMAGE, "BLIP-2 answers about an image: send one as an image_url part "
                    + "({\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,...\"}}) in a user message");
        }
        refuseWhatCannotBeGiven(body);
        return new Request(model.asText(), image, question, params(body), flag(body, "stream"),
                flag(body.path("stream_options"), "include_usage"), stops(body.get("stop")));
    }

    private static void refuseWhatCannotBeGiven(JsonNode body) {
        JsonNode format = body.path("response_format").path("type");
        if (!format.isMissingNode() && !format.isNull() && !"text".equals(format.asText())) {
            throw new RequestError(RequestError.INVALID_PARAMS, "response_format " + ClientText.quote(format.asText())
                    + " cannot be given: BLIP-2 answers in plain text");
        }
        JsonNode toolChoice = body.get("tool_choice");
        if (toolChoice != null && !toolChoice.isNull() && !(toolChoice.isTextual() && List.of("none", "auto").contains(toolChoice.asText()))) {
            throw new RequestError(RequestError.INVALID_PARAMS, "tool_choice asks for a tool call, which BLIP-2 cannot make (none or auto only)");
        }
        if (body.path("logprobs").asBoolean(false) || body.hasNonNull("top_logprobs")) {
            throw new RequestError(RequestError.INVALID_PARAMS, "logprobs are not given by this service");
        }
    }

    private static ObjectNode params(JsonNode body) {
        ObjectNode p = ResultJson.JSON.createObjectNode();
        JsonNode n = body.get("n");
        if (n != null && !n.isNull() && !(n.isIntegralNumber() && n.asInt() == 1)) {
            throw new RequestError(RequestError.INVALID_PARAMS, "n must be 1: BLIP-2 answers once per request (send the request again "
                    + "with another seed for another answer)");
        }
        JsonNode max = body.hasNonNull("max_completion_tokens") ? body.get("max_completion_tokens") : body.get("max_tokens");
        if (max != null && !max.isNull()) {
            p.set("max_new_tokens", max);
        }
        JsonNode temperature = body.get("temperature");
        boolean greedy = temperature != null && temperature.isNumber() && temperature.asDouble() == 0; // top_p or not
        if (temperature != null && !temperature.isNull()) {
            if (!temperature.isNumber() || temperature.asDouble() < 0 || temperature.asDouble() > 2) {
                throw new RequestError(RequestError.INVALID_PARAMS, "temperature must be a number from 0 to 2");
            }
            if (temperature.asDouble() > 0) {
                p.put("do_sample", true);
                p.set("temperature", temperature);
            }
        }
        JsonNode topP = body.get("top_p");
        if (topP != null && !topP.isNull()) {
            if (!topP.isNumber() || topP.asDouble() <= 0 || topP.asDouble() > 1) {
                throw new RequestError(RequestError.INVALID_PARAMS, "top_p must be a number above 0, at most 1");
            }
            if (topP.asDouble() < 1 && !greedy) {
                p.put("do_sample", true);
                p.set("top_p", topP);
            }
        }
        JsonNode seed = body.get("seed");
        if (seed != null && !seed.isNull()) {
            p.set("seed", seed);
        }
        return p;
    }

    private static List<String> stops(JsonNode stop) {
        List<String> out = new ArrayList<>();
        if (stop == null || stop.isNull()) {
            return out;
        }
        if (stop.isTextual()) {
            out.add(stop.asText());
        } else if (stop.isArray() && stop.size() <= MAX_STOPS) {
            stop.forEach(s -> {
                if (!s.isTextual()) {
                    throw new RequestError(RequestError.INVALID_PARAMS, "stop must be a string or an array of up to " + MAX_STOPS + " strings");
                }
                out.add(s.asText());
            });
        } else {
            throw new RequestError(RequestError.INVALID_PARAMS, "stop must be a string or an array of up to " + MAX_STOPS + " strings");
        }
        for (String s : out) {
            if (s.isEmpty() || s.length() > MAX_STOP_CHARS) {
                throw new RequestError(RequestError.INVALID_PARAMS, "a stop string has 1 to " + MAX_STOP_CHARS + " characters");
            }
            if (io.blip2stream.engine.RequestTexts.loneSurrogate(s) >= 0) {
                throw new RequestError(RequestError.INVALID_PARAMS, "a stop string holds half of a character (a lone surrogate)");
            }
        }
        return out;
    }

    private static boolean flag(JsonNode n, String field) {
        JsonNode v = n.get(field);
        if (v != null && !v.isNull() && !v.isBoolean()) {
            throw new RequestError(RequestError.INVALID_REQUEST, field + " must be true or false");
        }
        return v != null && v.asBoolean();
    }

    // ---- answers

    /** Tokens read and written: the prompt's ids and the visual prompt's queries, and the answer's tokens. */
    public record Usage(int promptTokens, int completionTokens) {
        ObjectNode json() {
            return ResultJson.JSON.createObjectNode().put("prompt_tokens", promptTokens).put("completion_tokens", completionTokens)
                    .put("total_tokens", promptTokens + completionTokens);
        }
    }

    /**
     * OpenAI's finish reason for ours: {@code stop} for the end of sequence or a stop string, {@code length} for
     * max_new_tokens or the request's deadline (cut short by a limit either way).
     */
    public static String finishReason(String ours, boolean stopString) {
        if (stopString) {
            return "stop";
        }
        return switch (ours) {
            case "eos" -> "stop";
            case "length", "timeout" -> "length";
            default -> ours;
        };
    }

    /** A whole answer ({@code chat.completion}). */
    public static ObjectNode completion(String id, long created, String model, String text, String finishReason, Usage usage) {
        ObjectNode o = head(id, "chat.completion", created, model);
        ObjectNode choice = o.putArray("choices").addObject();
        choice.put("index", 0);
        choice.putObject("message").put("role", "assistant").put("content", text).putNull("refusal");
        choice.putNull("logprobs");
        choice.put("finish_reason", finishReason);
        o.set("usage", usage.json());
        return o;
    }

    /** A streamed chunk: {@code delta} (role, content), and the finish reason in the last one (else null). */
    public static ObjectNode chunk(String id, long created, String model, ObjectNode delta, String finishReason) {
        ObjectNode o = head(id, "chat.completion.chunk", created, model);
        ObjectNode choice = o.putArray("choices").addObject();
        choice.put("index", 0);
        choice.set("delta", delta);
        choice.putNull("logprobs");
        if (finishReason == null) {
            choice.putNull("finish_reason");
        } else {
            choice.put("finish_reason", finishReason);
        }
        return o;
    }

    /** The streamed usage chunk ({@code stream_options.include_usage}): no choices. */
    public static ObjectNode usageChunk(String id, long created, String model, Usage usage) {
        ObjectNode o = head(id, "chat.completion.chunk", created, model);
        o.putArray("choices");
        o.set("usage", usage.json());
        return o;
    }

    /** A delta with content (and the role, in the first chunk). */
    public static ObjectNode delta(String role, String content) {
        ObjectNode d = ResultJson.JSON.createObjectNode();
        if (role != null) {
            d.put("role", role);
        }
        if (content != null) {
            d.put("content", content);
        }
        return d;
    }

    private static ObjectNode head(String id, String object, long created, String model) {
        return ResultJson.JSON.createObjectNode().put("id", id).put("object", object).put("created", created).put("model", model)
                .put("system_fingerprint", "blip2-stream");
    }

    /** {@code GET /v1/models}: the loaded models. */
    public static ObjectNode models(List<String> ids, long created) {
        ObjectNode o = ResultJson.JSON.createObjectNode().put("object", "list");
        ArrayNode data = o.putArray("data");
        for (String id : ids) {
            data.addObject().put("id", id).put("object", "model").put("created", created).put("owned_by", "blip2-stream");
        }
        return o;
    }

    // ---- embeddings

    /**
     * An embeddings request ({@code POST /v1/embeddings}) on a retrieval checkpoint.
     *
     * @param texts  {@code input}: a string or strings, each embedded by the Q-Former's text side ([P] each)
     * @param image  an {@code image_url} part of a user message (vLLM's multimodal embeddings): the image's query
     *               embeddings, one per query ([Q] of [P]); null for texts alone
     * @param base64 {@code encoding_format} base64: each embedding as little-endian float32, base64
     */
    public record EmbeddingsRequest(String model, List<String> texts, String image, boolean base64, Integer dimensions) {}

    /**
     * Reads an embeddings request: {@code input} (a string or an array of strings; token ids are refused, the
     * tokenizer being the checkpoint's), or {@code messages} with an image part and text parts; {@code dimensions},
     * when given, must be the checkpoint's own (the caller checks it: these embeddings cannot be shortened).
     */
    public static EmbeddingsRequest parseEmbeddings(JsonNode body) {
        if (body == null || !body.isObject()) {
            throw new RequestError(RequestError.INVALID_JSON, "the body must be a JSON object (an embeddings request)");
        }
        JsonNode model = body.get("model");
        if (model == null || !model.isTextual() || model.asText().isBlank()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "model is required: the retrieval checkpoint's id from GET /v1/models");
        }
        List<String> texts = new ArrayList<>();
        String image = null;
        JsonNode input = body.get("input");
        if (input != null && input.isTextual()) {
            texts.add(input.asText());
        } else if (input != null && input.isArray()) {
            for (int i = 0; i < input.size(); i++) {
                if (!input.get(i).isTextual()) {
                    throw new RequestError(RequestError.INVALID_REQUEST, "input[" + i + "] must be a string (token ids are not taken: "
                            + "the checkpoint tokenizes its texts)");
                }
                texts.add(input.get(i).asText());
            }
        } else if (input != null && !input.isNull()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "input must be a string or an array of strings");
        }
        if (body.has("messages")) {
            Request asked = parse(body, false);
            image = asked.image();
            if (asked.question() != null) {
                texts.add(asked.question());
            }
        }
        if (texts.isEmpty() && image == null) {
            throw new RequestError(RequestError.MISSING_TEXTS, "input is required: a string or an array of strings (or messages with an image)");
        }
        JsonNode format = body.get("encoding_format");
        String f = format == null || format.isNull() ? "float" : format.asText();
        if (!f.equals("float") && !f.equals("base64")) {
            throw new RequestError(RequestError.INVALID_PARAMS, "encoding_format must be float or base64");
        }
        JsonNode dims = body.get("dimensions");
        if (dims != null && !dims.isNull() && !dims.isIntegralNumber()) {
            throw new RequestError(RequestError.INVALID_PARAMS, "dimensions must be an integer");
        }
        return new EmbeddingsRequest(model.asText(), texts, image, f.equals("base64"), dims == null || dims.isNull() ? null : dims.asInt());
    }

    /**
     * The embeddings answer: the texts' embeddings in order ({@code index} 0..), then the image's query embeddings
     * (one per query), from a result's {@code text_embeds} and {@code image_embeds}.
     */
    public static ObjectNode embeddings(String model, JsonNode result, boolean base64, int promptTokens) {
        ObjectNode o = ResultJson.JSON.createObjectNode().put("object", "list");
        ArrayNode data = o.putArray("data");
        for (String field : List.of("text_embeds", "image_embeds")) {
            for (JsonNode row : result.path(field)) {
                ObjectNode e = data.addObject().put("object", "embedding").put("index", data.size() - 1);
                if (base64) {
                    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * row.size()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    row.forEach(v -> b.putFloat((float) v.asDouble()));
                    e.put("embedding", java.util.Base64.getEncoder().encodeToString(b.array()));
                } else {
                    ArrayNode a = e.putArray("embedding");
                    row.forEach(v -> a.add(v.floatValue()));
                }
            }
        }
        o.put("model", model);
        o.putObject("usage").put("prompt_tokens", promptTokens).put("total_tokens", promptTokens);
        return o;
    }

    /** Whether a URL is a {@code data:} URL (an inline image); others are images by reference. */
    public static boolean isDataUrl(String url) {
        return url.regionMatches(true, 0, "data:", 0, 5);
    }
}
