package io.blip2stream.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** The {@code ask} command: answers a question about an image with a generation checkpoint (VQA). */
@Command(name = "ask", mixinStandardHelpOptions = true,
        description = "Answer a question about an image (\"Question: {q} Answer:\" for OPT).")
final class AskCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Mixin
    GenerateOptions generate;

    @Option(names = "--image", required = true, paramLabel = "FILE", description = "a PNG, JPEG, BMP or GIF image")
    Path image;

    @Option(names = "--question", required = true, paramLabel = "Q",
            description = "the question; it is put in the model's template, \"Question: {q} Answer:\" for OPT")
    String question;

    @Override
    public Integer call() throws Exception {
        if (question.isBlank()) {
            throw new Main.UserError("--question is empty");
        }
        return GenerateRunner.run(model, image, generate, m -> m.generation().vqaPrompt(question));
    }
}
