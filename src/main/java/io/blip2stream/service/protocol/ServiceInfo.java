package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.InferenceRunner;
import io.blip2stream.engine.RequestTexts;
import io.blip2stream.model.config.ModelCard;
import io.blip2stream.service.config.ServiceConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * {@code GET /v1/info}: what this node serves, for a client (the page) to show before anything is sent: each loaded
 * model with its tasks, engine, precision and model card (what it knows, and examples with the answers it gives),
 * and the limits a request must keep. Built once at start, after the models loaded; the cards are read from the
 * checkpoints' folders ({@link ModelCard}).
 */
public final class ServiceInfo {
    private ServiceInfo() {}

    /**
     * This node's: the models the texts were made for (a generation and a retrieval checkpoint, either absent), in
     * the precision the runner keeps them ({@code config.dtype()} when no runner is there to ask).
     */
    public static ObjectNode of(ServiceConfig config, RequestTexts texts, Path generationDir, Path retrievalDir, InferenceRunner runner) {
        List<Model> models = new ArrayList<>();
        if (texts.generationModel() != null) {
            models.add(new Model(texts.generationModel(), generationDir, List.of("caption", "vqa"),
                    runner == null ? config.dtype() : runner.generationModel().precision().id()));
        }
        if (texts.retrievalModel() != null) {
            models.add(new Model(texts.retrievalModel(), retrievalDir, List.of("match", "embed"),
                    runner == null ? config.dtype() : runner.retrievalModel().precision().id()));
        }
        var i = config.inference();
        return json(models, config.engine(), config.devices(), config.limits().maxImageBytes(), config.limits().maxImagePixels(),
                i.defaultMaxNewTokens(), i.maxNewTokensCap());
    }

    /** One loaded checkpoint: its id (as {@code GET /v1/models} lists it), folder, tasks and precision. */
    public record Model(String id, Path dir, List<String> tasks, String dtype) {}

    public static ObjectNode json(List<Model> models, String engine, List<String> devices, long maxImageBytes, long maxImagePixels,
                                  int defaultMaxNewTokens, int maxNewTokensCap) {
        ObjectNode o = ResultJson.JSON.createObjectNode();
        ArrayNode all = o.putArray("tasks");
        ArrayNode list = o.putArray("models");
        for (Model m : models) {
            m.tasks().forEach(all::add);
            ObjectNode n = list.addObject().put("id", m.id());
            m.tasks().forEach(n.putArray("tasks")::add);
            n.put("engine", engine).put("dtype", m.dtype());
            devices.forEach(n.putArray("devices")::add);
            ModelCard card = ModelCard.read(m.dir());
            n.put("summary", card.summary());
            ArrayNode examples = n.putArray("examples");
            for (ModelCard.Example e : card.examples()) {
                ObjectNode x = examples.addObject().put("title", e.title())
                        .put("task", e.question() == null ? "caption" : "vqa");
                if (e.question() != null) {
                    x.put("question", e.question());
                }
                if (e.expected() != null) {
                    x.put("expected", e.expected());
                }
                x.put("image", "data:" + e.mediaType() + ";base64," + Base64.getEncoder().encodeToString(e.image()));
            }
        }
        o.putObject("limits").put("max_image_bytes", maxImageBytes).put("max_image_pixels", maxImagePixels)
                .put("default_max_new_tokens", defaultMaxNewTokens).put("max_new_tokens", maxNewTokensCap);
        return o;
    }
}
