package io.blip2stream.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** The {@code caption} command: captions an image with a generation checkpoint. */
@Command(name = "caption", mixinStandardHelpOptions = true,
        description = "Caption an image. Without --prompt an OPT model starts from BOS alone.")
final class CaptionCommand implements Callable<Integer> {
    @Mixin
    ModelOptions model;

    @Mixin
    GenerateOptions generate;

    @Option(names = "--image", required = true, paramLabel = "FILE", description = "a PNG, JPEG, BMP or GIF image")
    Path image;

    @Option(names = "--prompt", paramLabel = "TEXT", description = "text the caption continues, such as \"a photo of\"")
    String prompt;

    @Override
    public Integer call() throws Exception {
        return GenerateRunner.run(model, image, generate, m -> prompt);
    }
}
