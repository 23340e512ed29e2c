package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.RequestError;
import io.blip2stream.model.generation.GenerationParams;

import java.util.Iterator;
import java.util.Map;

/**
 * Generation parameters from JSON, with transformers' names ({@code max_new_tokens}, {@code num_beams},
 * {@code do_sample}, {@code temperature}, {@code top_k}, {@code top_p}, {@code repetition_penalty},
 * {@code length_penalty}, {@code early_stopping}, {@code min_new_tokens}, {@code seed}): every API's {@code params}.
 * Unknown names and bad values are refused, naming them ({@code invalid_params}).
 */
public final class GenerationParamsJson {
    private GenerationParamsJson() {}

    /**
     * Reads {@code p} (null: the defaults, with {@code defaultMaxNewTokens}); {@code max_new_tokens} at most
     * {@code maxNewTokensCap}.
     */
    public static GenerationParams read(JsonNode p, int defaultMaxNewTokens, int maxNewTokensCap) {
        GenerationParams.Builder b = GenerationParams.builder().maxNewTokens(defaultMaxNewTokens);
        if (p == null || p.isNull()) {
            return b.build();
        }
        if (!p.isObject()) {
            throw new RequestError(RequestError.INVALID_PARAMS, "params must be a JSON object");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = p.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode v = e.getValue();
            String k = e.getKey();
            switch (k) {
                case "max_new_tokens" -> {
                    int n = integer(k, v);
                    if (n > maxNewTokensCap) {
                        throw new RequestError(RequestError.INVALID_PARAMS, "max_new_tokens " + n + " is above the limit of "
                                + maxNewTokensCap);
                    }
                    b.maxNewTokens(n);
                }
                case "min_new_tokens" -> b.minNewTokens(integer(k, v));
                case "num_beams" -> b.numBeams(integer(k, v));
                case "do_sample" -> b.doSample(bool(v, k));
                case "temperature" -> b.temperature(number(k, v));
                case "top_k" -> b.topK(integer(k, v));
                case "top_p" -> b.topP(number(k, v));
                case "repetition_penalty" -> b.repetitionPenalty(number(k, v));
                case "length_penalty" -> b.lengthPenalty(number(k, v));
                case "early_stopping" -> {
                    String s = v.asText().toLowerCase(java.util.Locale.ROOT);
                    switch (s) {
                        case "true" -> b.earlyStopping(GenerationParams.EarlyStopping.TRUE);
                        case "false" -> b.earlyStopping(GenerationParams.EarlyStopping.FALSE);
                        case "never" -> b.earlyStopping(GenerationParams.EarlyStopping.NEVER);
                        default -> throw new RequestError(RequestError.INVALID_PARAMS, "early_stopping must be true, false or \"never\"");
                    }
                }
                case "seed" -> {
                    if (v == null || !v.isIntegralNumber() || !v.canConvertToLong()) { // OpenAI's seeds are 64-bit
                        throw new RequestError(RequestError.INVALID_PARAMS, "seed must be an integer, got " + ClientText.quote(v));
                    }
                    b.seed(v.asLong());
                }
                default -> throw new RequestError(RequestError.INVALID_PARAMS, "unknown parameter '" + ClientText.quote(k) + "'");
            }
        }
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new RequestError(RequestError.INVALID_PARAMS, e.getMessage());
        }
    }

    private static int integer(String k, JsonNode v) {
        if (v == null || !v.canConvertToInt() || !v.isIntegralNumber()) {
            throw new RequestError(RequestError.INVALID_PARAMS, k + " must be an integer, got " + ClientText.quote(v));
        }
        return v.asInt();
    }

    private static double number(String k, JsonNode v) {
        if (v == null || !v.isNumber()) {
            throw new RequestError(RequestError.INVALID_PARAMS, k + " must be a number, got " + ClientText.quote(v));
        }
        return v.asDouble();
    }

    private static boolean bool(JsonNode v, String k) {
        if (v == null || !v.isBoolean()) {
            throw new RequestError(RequestError.INVALID_PARAMS, k + " must be true or false, got " + ClientText.quote(v));
        }
        return v.asBoolean();
    }
}
