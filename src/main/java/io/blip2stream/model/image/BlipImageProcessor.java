package io.blip2stream.model.image;

import io.blip2stream.model.config.PreprocessorConfig;

/**
 * transformers' BLIP image processor with the PIL backend (how BLIP-2 was trained): convert to RGB, resize with
 * Pillow's filter on uint8 pixels, rescale ({@code x * rescale_factor} in float64, then float32), normalise
 * ({@code (x - mean) / std} in float32). Output is pixel_values [3, H, W], channel-major.
 */
public final class BlipImageProcessor {
    private final PreprocessorConfig config;
    private final ImageDecoder decoder;

    public BlipImageProcessor(PreprocessorConfig config) {
        this(config, new ImageDecoder());
    }

    public BlipImageProcessor(PreprocessorConfig config, ImageDecoder decoder) {
        this.config = config;
        this.decoder = decoder;
        if (config.doResize()) {
            PillowResample.Filter.fromPil(config.resample()); // fail at load, not per image
        }
    }

    public PreprocessorConfig config() {
        return config;
    }

    public int height() {
        return config.height();
    }

    public int width() {
        return config.width();
    }

    /** Encoded image bytes to pixel_values [3, H, W]. */
    public float[] preprocess(byte[] encoded) {
        return preprocess(decoder.decode(encoded));
    }

    /** The resized uint8 image, before rescaling (what PIL's resize returns). */
    public RgbImage resize(RgbImage img) {
        if (!config.doResize() || (img.width() == config.width() && img.height() == config.height())) {
            return img;
        }
        byte[] px = PillowResample.resize(img.pixels(), img.width(), img.height(), 3, config.width(), config.height(),
                PillowResample.Filter.fromPil(config.resample()));
        return new RgbImage(config.width(), config.height(), px);
    }

    public float[] preprocess(RgbImage img) {
        RgbImage r = resize(img);
        if (r.width() != config.width() || r.height() != config.height()) {
            throw new IllegalArgumentException("image is " + r.width() + "x" + r.height() + " and do_resize is off; the model needs "
                    + config.width() + "x" + config.height());
        }
        int hw = r.width() * r.height();
        float[] out = new float[3 * hw];
        byte[] px = r.pixels();
        double scale = config.doRescale() ? config.rescaleFactor() : 1.0;
        for (int c = 0; c < 3; c++) {
            float mean = config.imageMean()[c];
            float std = config.imageStd()[c];
            for (int i = 0; i < hw; i++) {
                float v = (float) ((px[i * 3 + c] & 0xff) * scale);
                if (config.doNormalize()) {
                    v = (v - mean) / std;
                }
                out[c * hw + i] = v;
            }
        }
        return out;
    }
}
