package io.blip2stream.service.protocol;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.InferenceResult;
import io.blip2stream.model.Blip2Retrieval;

/**
 * The JSON of a result, the same on every output (Kafka topics, HTTP, WebSocket): {@code id}, {@code task},
 * then the task's fields (caption and vqa: {@code text}, {@code token_ids}, {@code finish_reason}; match:
 * {@code results} as the command line prints them; embed: {@code image_embeds} [queries][dim] and/or
 * {@code text_embeds} [texts][dim]), then {@code model}, {@code timings} and {@code node}.
 */
public final class ResultJson {
    public static final ObjectMapper JSON = new ObjectMapper();

    private ResultJson() {}

    public static ObjectNode of(InferenceResult r, String node) {
        ObjectNode o = JSON.createObjectNode();
        o.put("id", r.job().id());
        o.put("task", r.job().task().wireName());
        InferenceResult.Output out = r.output();
        if (out instanceof InferenceResult.Generated g) {
            o.put("text", g.text());
            ArrayNode ids = o.putArray("token_ids");
            for (int id : g.tokenIds()) {
                ids.add(id);
            }
            o.put("finish_reason", g.finishReason().wireName());
        } else if (out instanceof InferenceResult.Matched m) {
            ArrayNode results = o.putArray("results");
            for (Blip2Retrieval.MatchResult x : m.matches()) {
                ObjectNode e = results.addObject();
                e.put("text", x.text());
                e.putArray("itm_logits").add(x.itmLogits()[0]).add(x.itmLogits()[1]);
                e.put("itm_probability", x.itmProbability());
                e.put("itc_score", x.itcScore());
            }
        } else if (out instanceof InferenceResult.Embedded e) {
            if (e.imageEmbeds().length > 0) {
                matrix(o.putArray("image_embeds"), e.imageEmbeds());
            }
            if (e.textEmbeds().length > 0) {
                ArrayNode texts = o.putArray("texts");
                r.job().retrieval().texts().forEach(texts::add);
                matrix(o.putArray("text_embeds"), e.textEmbeds());
            }
        }
        o.put("model", r.model());
        InferenceResult.Timings t = r.timings();
        ObjectNode tn = o.putObject("timings");
        tn.put("queued_ms", t.queuedMs());
        tn.put("preprocess_ms", t.preprocessMs());
        tn.put("vision_ms", t.visionMs());
        tn.put("qformer_ms", t.qformerMs());
        tn.put("prefill_ms", t.prefillMs());
        tn.put("decode_ms", t.decodeMs());
        tn.put("total_ms", t.totalMs());
        if (r.output() instanceof InferenceResult.Generated) {
            tn.put("visual_prompt", t.visualPromptCached() ? "cached" : "computed");
        }
        o.put("node", node);
        return o;
    }

    private static void matrix(ArrayNode a, float[][] rows) {
        for (float[] row : rows) {
            ArrayNode r = a.addArray();
            for (float v : row) {
                r.add(v);
            }
        }
    }

    public static byte[] bytes(ObjectNode o) {
        try {
            return JSON.writeValueAsBytes(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
