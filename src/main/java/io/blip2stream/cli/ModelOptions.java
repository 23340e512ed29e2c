package io.blip2stream.cli;

import io.blip2stream.engine.Engines;
import io.blip2stream.engine.ModelLocations;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.image.ImageDecodeException;
import io.blip2stream.model.image.ImageDecoder;
import io.blip2stream.model.image.RgbImage;
import io.blip2stream.model.weights.Precision;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Options every model command shares, and the checks made before the engine starts. */
final class ModelOptions {
    @Option(names = "--model", paramLabel = "DIR",
            description = "a BLIP-2 checkpoint folder in the Hugging Face layout (default: the trained scene model, "
                    + ModelLocations.DEFAULT_GENERATION + ", or " + ModelLocations.DEFAULT_RETRIEVAL + " for match and embed)")
    Path model;

    @Option(names = "--engine", paramLabel = "ENGINE", defaultValue = "${env:BLIP2_ENGINE:-tensorflow}",
            description = "tensorflow (default) or pytorch")
    String engine;

    @Option(names = "--dtype", paramLabel = "DTYPE", defaultValue = "${env:BLIP2_DTYPE:-auto}",
            description = "the precision the weights are kept in: float32, bfloat16, int8, or auto (default: the "
                    + "checkpoint's own where it runs fast, else float32; see models/README.md)")
    String dtype;

    @Option(names = "--stats", description = "print load time, peak heap, peak RSS and dtype on stderr")
    boolean stats;

    /** The --dtype setting, checked before any engine starts. */
    String dtype() {
        return checkDtype(dtype);
    }

    /** Says on stderr when a low-precision model runs slower than it could (no vector module; bfloat16 without oneDNN), and how to fix it. */
    static void noteKernels(io.blip2stream.model.Blip2Model model) {
        if (io.blip2stream.model.nn.LowPrecisionWeight.slowKernels(model.precision())) {
            System.err.println("note: " + model.precision() + " weights on " + io.blip2stream.model.nn.LowPrecisionWeight.kernels(model.precision()));
        }
    }

    static String checkDtype(String dtype) {
        if (!Precision.isSetting(dtype)) {
            throw new Main.UserError("--dtype must be float32, bfloat16, int8 or auto, not '" + dtype + "'");
        }
        return dtype;
    }

    Engines.Kind engineKind() {
        try {
            return Engines.Kind.parse(engine);
        } catch (IllegalArgumentException e) {
            throw new Main.UserError(e.getMessage());
        }
    }

    /**
     * Fails with one line if the folder is not a checkpoint: checked before any engine starts.
     *
     * @return its config
     */
    Blip2Config checkModel() {
        checkDtype(dtype);
        String d = dtype.strip().toLowerCase(java.util.Locale.ROOT);
        if ((d.equals("bfloat16") || d.equals("int8")) && engineKind() == Engines.Kind.PYTORCH) {
            throw new Main.UserError("--dtype " + d + " runs on the TensorFlow engine only (DJL's PyTorch engine has no "
                    + "bfloat16 arrays): use --engine tensorflow, or --dtype float32 on PyTorch");
        }
        if (model == null) {
            model = ModelLocations.find(ModelLocations.DEFAULT_RETRIEVAL);
        }
        if (!Files.isDirectory(model)) {
            throw new Main.UserError("model folder " + model + " does not exist");
        }
        if (!Files.exists(model.resolve("config.json"))) {
            throw new Main.UserError("model folder " + model + " has no config.json");
        }
        if (!Files.exists(model.resolve("model.safetensors")) && !Files.exists(model.resolve("model.safetensors.index.json"))) {
            throw new Main.UserError("model folder " + model + " has no weights (model.safetensors or model.safetensors.index.json)");
        }
        if (!Files.exists(model.resolve("tokenizer.json"))) {
            throw new Main.UserError("model folder " + model + " has no tokenizer.json");
        }
        try {
            return Blip2Config.load(model);
        } catch (RuntimeException e) {
            throw new Main.UserError("model folder " + model + ": " + Main.describe(e));
        }
    }

    /** The checkpoint generates text, or the command fails with one line. */
    Blip2Config checkGenerationModel() {
        if (model == null) {
            model = ModelLocations.find(ModelLocations.DEFAULT_GENERATION);
        }
        Blip2Config c = checkModel();
        if (c.isRetrieval()) {
            throw new Main.UserError(model + " is a retrieval checkpoint (Blip2ForImageTextRetrieval): use match or embed");
        }
        return c;
    }

    /** The checkpoint is a retrieval one, or the command fails with one line. */
    Blip2Config checkRetrievalModel() {
        Blip2Config c = checkModel();
        if (!c.isRetrieval()) {
            throw new Main.UserError(model + " is not a retrieval checkpoint (Blip2ForImageTextRetrieval): match needs one");
        }
        return c;
    }

    /** The image, decoded before any engine starts so that a bad file fails early with one line. */
    record Image(RgbImage rgb, long decodeNanos) {}

    static Image readImage(Path image) {
        if (!Files.isRegularFile(image)) {
            throw new Main.UserError("image file " + image + " does not exist");
        }
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(image);
        } catch (IOException e) {
            throw new Main.UserError("cannot read image file " + image + ": " + e.getMessage());
        }
        try {
            long t0 = System.nanoTime();
            RgbImage decoded = new ImageDecoder().decode(bytes);
            return new Image(decoded, System.nanoTime() - t0);
        } catch (ImageDecodeException e) {
            throw new Main.UserError("unreadable image " + image + ": " + e.getMessage());
        }
    }
}
