package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code preprocessor_config.json} of a BLIP image processor. Defaults are transformers' {@code BlipImageProcessor}
 * ones (384x384 there; BLIP-2 checkpoints say 224x224) with the OpenAI CLIP mean and std.
 *
 * @param resample PIL's filter number: 1 LANCZOS, 2 BILINEAR, 3 BICUBIC
 */
public record PreprocessorConfig(
        boolean doConvertRgb,
        boolean doResize,
        int height,
        int width,
        int resample,
        boolean doRescale,
        double rescaleFactor,
        boolean doNormalize,
        float[] imageMean,
        float[] imageStd) {

    public static final float[] CLIP_MEAN = {0.48145466f, 0.4578275f, 0.40821073f};
    public static final float[] CLIP_STD = {0.26862954f, 0.26130258f, 0.27577711f};

    public static PreprocessorConfig load(Path modelDir, int defaultImageSize) {
        Path f = modelDir.resolve("preprocessor_config.json");
        JsonNode n = Files.exists(f) ? Json.read(f) : Json.MAPPER.createObjectNode();
        return parse(n, defaultImageSize);
    }

    public static PreprocessorConfig parse(JsonNode n, int defaultImageSize) {
        JsonNode size = Json.obj(n, "size");
        int h = Json.i(size, "height", Json.i(size, "shortest_edge", defaultImageSize));
        int w = Json.i(size, "width", Json.i(size, "shortest_edge", defaultImageSize));
        return new PreprocessorConfig(
                Json.b(n, "do_convert_rgb", true),
                Json.b(n, "do_resize", true),
                h, w,
                Json.i(n, "resample", 3),
                Json.b(n, "do_rescale", true),
                Json.d(n, "rescale_factor", 1.0 / 255),
                Json.b(n, "do_normalize", true),
                floats(n.get("image_mean"), CLIP_MEAN),
                floats(n.get("image_std"), CLIP_STD));
    }

    private static float[] floats(JsonNode a, float[] dflt) {
        if (a == null || a.isNull()) {
            return dflt.clone();
        }
        if (a.isNumber()) {
            float v = (float) a.asDouble();
            return new float[] {v, v, v};
        }
        float[] out = new float[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) a.get(i).asDouble();
        }
        return out;
    }
}
