package io.blip2stream.model.image;

/** An 8-bit RGB image, pixels interleaved row by row: [height][width][3]. */
public record RgbImage(int width, int height, byte[] pixels) {
    public RgbImage {
        if (pixels.length != width * height * 3) {
            throw new IllegalArgumentException("expected " + width * height * 3 + " bytes, got " + pixels.length);
        }
    }
}
