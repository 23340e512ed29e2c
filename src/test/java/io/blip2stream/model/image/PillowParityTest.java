package io.blip2stream.model.image;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Decoding, conversion to RGB and resampling against Pillow 9.4 (src/test/python/make_pillow_references.py):
 * for each source, PIL's convert("RGB") and its bicubic resize to 224x224, bit for bit.
 */
class PillowParityTest {
    private final ImageDecoder decoder = new ImageDecoder();

    static byte[] resource(String name) {
        try (InputStream in = PillowParityTest.class.getResourceAsStream("/images/" + name)) {
            if (in == null) {
                throw new IllegalArgumentException("no test image " + name);
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    RgbImage reference(String name) {
        return decoder.decode(resource(name));
    }

    @ParameterizedTest
    @ValueSource(strings = {"rgb_17x13.png", "rgb_1000x50.png", "rgb_225x224.png", "rgb_224x224.png", "rgba_300x200.png",
            "gray_97x131.png", "palette_64x48.png", "la_50x70.png", "bilevel_40x30.png", "gray16_40x30.png",
            "q90_420.jpg", "q95_444.jpg", "q80_422.jpg", "progressive.jpg", "gray.jpg", "rgb24.bmp", "anim.gif"})
    void convertAndResizeAsPillow(String name) {
        RgbImage rgb = decoder.decode(resource(name));
        RgbImage expected = reference(name + ".rgb.png");
        assertEquals(expected.width(), rgb.width(), name + " width");
        assertEquals(expected.height(), rgb.height(), name + " height");
        assertPixels(name + " convert(\"RGB\")", expected.pixels(), rgb.pixels());
        byte[] resized = PillowResample.resize(rgb.pixels(), rgb.width(), rgb.height(), 3, 224, 224, PillowResample.Filter.BICUBIC);
        assertPixels(name + " resize bicubic 224", reference(name + ".bicubic224.png").pixels(), resized);
    }

    @Test
    void otherFiltersAndSizesAsPillow() {
        RgbImage rgb = decoder.decode(resource("rgba_300x200.png"));
        assertPixels("bilinear", reference("rgba_300x200.png.bilinear100x80.png").pixels(),
                PillowResample.resize(rgb.pixels(), 300, 200, 3, 100, 80, PillowResample.Filter.BILINEAR));
        assertPixels("lanczos", reference("rgba_300x200.png.lanczos100x80.png").pixels(),
                PillowResample.resize(rgb.pixels(), 300, 200, 3, 100, 80, PillowResample.Filter.LANCZOS));
        assertPixels("bicubic up", reference("rgba_300x200.png.bicubic451x333.png").pixels(),
                PillowResample.resize(rgb.pixels(), 300, 200, 3, 451, 333, PillowResample.Filter.BICUBIC));
    }

    @Test
    void refusesWhatIsNoImage() {
        ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode("not an image".getBytes()));
        assertTrue(e.getMessage().contains("not an image"), e.getMessage());
        assertThrows(ImageDecodeException.class, () -> decoder.decode(new byte[0]));
        byte[] png = resource("rgba_300x200.png");
        byte[] truncated = java.util.Arrays.copyOf(png, png.length / 2);
        assertThrows(ImageDecodeException.class, () -> decoder.decode(truncated));
    }

    @Test
    void refusesImagesOverThePixelLimitBeforeDecoding() {
        ImageDecodeException e = assertThrows(ImageDecodeException.class,
                () -> new ImageDecoder(1000).decode(resource("rgb_1000x50.png")));
        assertTrue(e.getMessage().contains("1000x50"), e.getMessage());
    }

    private static void assertPixels(String what, byte[] expected, byte[] actual) {
        assertEquals(expected.length, actual.length, what + ": size");
        int diffs = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] != actual[i]) {
                diffs++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        if (diffs > 0) {
            assertArrayEquals(expected, actual, what + ": " + diffs + " of " + expected.length
                    + " samples differ, first at " + first + " (" + (expected[first] & 0xff) + " vs " + (actual[first] & 0xff) + ")");
        }
    }
}
