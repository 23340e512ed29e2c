package io.blip2stream.cli;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.Blip2Retrieval;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** The {@code match} command: scores texts against an image with a retrieval checkpoint (ITM and ITC). */
@Command(name = "match", mixinStandardHelpOptions = true,
        description = "Score texts against an image with a retrieval checkpoint: ITM (match classifier) and ITC "
                + "(best cosine over queries), in the order given.")
final class MatchCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Option(names = "--image", required = true, paramLabel = "FILE", description = "a PNG, JPEG, BMP or GIF image")
    Path image;

    @Option(names = "--text", required = true, paramLabel = "T", description = "a text; repeat for several")
    List<String> texts;

    @Option(names = "--json", description = "print one JSON object on one line")
    boolean json;

    @Override
    public Integer call() throws Exception {
        model.checkRetrievalModel();
        ModelOptions.Image img = ModelOptions.readImage(image);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        long load0 = System.nanoTime();
        try (NDManager manager = Engines.newManager(model.engineKind());
             Blip2Model m = Blip2Model.load(model.model, manager, model.dtype())) {
            ModelOptions.noteKernels(m);
            long loadNanos = System.nanoTime() - load0;
            List<Blip2Retrieval.MatchResult> results = m.retrieval().match(m.processor().preprocess(img.rgb()), texts);
            if (json) {
                ObjectMapper mapper = new ObjectMapper();
                ObjectNode o = mapper.createObjectNode();
                var arr = o.putArray("results");
                for (Blip2Retrieval.MatchResult r : results) {
                    ObjectNode e = arr.addObject();
                    e.put("text", r.text());
                    e.putArray("itm_logits").add(r.itmLogits()[0]).add(r.itmLogits()[1]);
                    e.put("itm_probability", r.itmProbability());
                    e.put("itc_score", r.itcScore());
                }
                out.println(mapper.writeValueAsString(o));
            } else {
                out.printf("%-8s %-8s %s%n", "itm_p", "itc", "text");
                for (Blip2Retrieval.MatchResult r : results) {
                    out.printf(Locale.ROOT, "%-8.4f %-8.4f %s%n", r.itmProbability(), r.itcScore(), r.text());
                }
            }
            if (model.stats) {
                Stats.print(loadNanos, m);
            }
        }
        return 0;
    }
}
