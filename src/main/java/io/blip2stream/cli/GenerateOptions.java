package io.blip2stream.cli;

import io.blip2stream.model.generation.GenerationParams;
import picocli.CommandLine.Option;

import java.util.Locale;

/** The generation options of {@code caption} and {@code ask}, with transformers' meaning. */
final class GenerateOptions {
    @Option(names = "--max-new-tokens", paramLabel = "N", defaultValue = "30", description = "most new tokens (default 30)")
    int maxNewTokens;

    @Option(names = "--min-new-tokens", paramLabel = "N", defaultValue = "0", description = "no EOS before N new tokens")
    int minNewTokens;

    @Option(names = "--num-beams", paramLabel = "K", defaultValue = "1", description = "beam search with K beams")
    int numBeams;

    @Option(names = "--do-sample", description = "sample instead of greedy decoding")
    boolean doSample;

    @Option(names = "--temperature", paramLabel = "T", defaultValue = "1.0",
            description = "sampling: divide the logits by T, below 1 surer, above 1 more varied (default 1.0)")
    double temperature;

    @Option(names = "--top-k", paramLabel = "K", defaultValue = "50", description = "sampling: keep the K most likely (0: all)")
    int topK;

    @Option(names = "--top-p", paramLabel = "P", defaultValue = "1.0", description = "sampling: nucleus probability")
    double topP;

    @Option(names = "--seed", paramLabel = "S", description = "sampling seed (reproducible output)")
    Long seed;

    @Option(names = "--repetition-penalty", paramLabel = "R", defaultValue = "1.0",
            description = "make tokens already in the text R times less likely, as transformers does (default 1.0: off)")
    double repetitionPenalty;

    @Option(names = "--length-penalty", paramLabel = "L", defaultValue = "1.0", description = "beam search length penalty")
    double lengthPenalty;

    @Option(names = "--early-stopping", paramLabel = "MODE", defaultValue = "false",
            description = "beam search: true, false or never")
    String earlyStopping;

    @Option(names = "--json", description = "print one JSON object on one line")
    boolean json;

    GenerationParams params() {
        try {
            return GenerationParams.builder()
                    .maxNewTokens(maxNewTokens).minNewTokens(minNewTokens).numBeams(numBeams)
                    .doSample(doSample).temperature(temperature).topK(topK).topP(topP).seed(seed)
                    .repetitionPenalty(repetitionPenalty).lengthPenalty(lengthPenalty)
                    .earlyStopping(GenerationParams.EarlyStopping.valueOf(earlyStopping.toUpperCase(Locale.ROOT)))
                    .build();
        } catch (IllegalArgumentException e) {
            String m = e.getMessage().startsWith("No enum constant")
                    ? "--early-stopping must be true, false or never" : e.getMessage();
            throw new Main.UserError(m);
        }
    }
}
