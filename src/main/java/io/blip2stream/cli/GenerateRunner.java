package io.blip2stream.cli;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.common.Millis;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.model.generation.RowListener;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/** Runs one caption or question from the command line, streaming the text or printing JSON. */
final class GenerateRunner {
    private GenerateRunner() {}

    interface PromptFor {
        String prompt(Blip2Model model);
    }

    static int run(ModelOptions m, Path imageFile, GenerateOptions g, PromptFor promptFor) throws Exception {
        m.checkGenerationModel();
        GenerationParams params = g.params();
        ModelOptions.Image image = ModelOptions.readImage(imageFile);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        long load0 = System.nanoTime();
        try (NDManager manager = Engines.newManager(m.engineKind());
             Blip2Model model = Blip2Model.load(m.model, manager, m.dtype())) {
            ModelOptions.noteKernels(model);
            long loadNanos = System.nanoTime() - load0;
            String prompt = promptFor.prompt(model);
            long t0 = System.nanoTime();
            float[] pixels = model.processor().preprocess(image.rgb());
            long preprocessNanos = image.decodeNanos() + System.nanoTime() - t0;
            Blip2Model.ImageFeatures f = model.encodeImages(List.of(pixels), false);
            RowListener listener = g.json ? RowListener.NONE : (index, tokenId, text) -> out.print(text);
            GenerationResult r = model.generation().generate(
                    List.of(new GenerationRequest(model.visualPrompt(f, 0), prompt)),
                    params, List.of(listener)).get(0);
            if (g.json) {
                ObjectMapper mapper = new ObjectMapper();
                ObjectNode o = mapper.createObjectNode();
                o.put("text", r.text());
                var ids = o.putArray("token_ids");
                for (int id : r.tokenIds()) {
                    ids.add(id);
                }
                o.put("finish_reason", r.finishReason().wireName());
                ObjectNode t = o.putObject("timings");
                t.put("preprocess", Millis.ofNanos(preprocessNanos));
                t.put("vision", Millis.ofNanos(f.visionNanos()));
                t.put("qformer", Millis.ofNanos(f.qformerNanos()));
                t.put("prefill", Millis.ofNanos(r.prefillNanos()));
                t.put("decode", Millis.ofNanos(r.decodeNanos()));
                out.println(mapper.writeValueAsString(o));
            } else {
                out.println();
            }
            if (m.stats) {
                Stats.print(loadNanos, model);
            }
        }
        return 0;
    }

}
