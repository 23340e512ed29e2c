package io.blip2stream.model.image;

import org.junit.jupiter.api.Test;

import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriter;
import javax.imageio.stream.ImageOutputStream;
import java.awt.Transparency;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.Raster;
import java.awt.image.WritableRaster;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hostile images (issue 9, item 4) at the decoder: decompression bombs are refused from their header before a
 * pixel is decoded; a zlib bomb and a GIF of 10,000 frames cost what their first image costs; a CMYK JPEG is refused
 * with a message that says why; 16-bit and palette PNGs decode as PIL converts them; truncated files are refused.
 * Each answers within a bound, so none can hold a worker.
 */
public class PoisonImageTest {
    final ImageDecoder decoder = new ImageDecoder(40_000_000L); // the service's limits.max_image_pixels

    public static byte[] chunk(String type, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(12 + data.length);
        b.putInt(data.length).put(type.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1)).put(data);
        CRC32 crc = new CRC32();
        crc.update(b.array(), 4, 4 + data.length);
        b.putInt((int) crc.getValue());
        return b.array();
    }

    /** A PNG of the given header (8-bit gray) and IDAT data. */
    public static byte[] png(int w, int h, byte[] idat) {
        ByteBuffer ihdr = ByteBuffer.allocate(13).putInt(w).putInt(h).put((byte) 8).put((byte) 0).put((byte) 0).put((byte) 0).put((byte) 0);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[] {(byte) 0x89, 'P', 'N', 'G', 13, 10, 26, 10});
        out.writeBytes(chunk("IHDR", ihdr.array()));
        out.writeBytes(chunk("IDAT", idat));
        out.writeBytes(chunk("IEND", new byte[0]));
        return out.toByteArray();
    }

    public static byte[] deflate(byte[] data, int repeat) {
        Deflater d = new Deflater(Deflater.BEST_COMPRESSION);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[1 << 16];
        for (int i = 0; i < repeat; i++) {
            d.setInput(data);
            while (!d.needsInput()) {
                out.write(buf, 0, d.deflate(buf));
            }
        }
        d.finish();
        while (!d.finished()) {
            out.write(buf, 0, d.deflate(buf));
        }
        return out.toByteArray();
    }

    public static byte[] jpeg(BufferedImage img) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "jpeg", out);
        return out.toByteArray();
    }

    /** A 16x16 JPEG whose frame header claims 50,000 x 50,000. */
    public static byte[] jpegBomb() throws Exception {
        byte[] jpeg = jpeg(new BufferedImage(16, 16, BufferedImage.TYPE_INT_RGB));
        int sof = -1;
        for (int i = 2; i + 1 < jpeg.length; i++) {
            if ((jpeg[i] & 0xFF) == 0xFF && ((jpeg[i + 1] & 0xFF) == 0xC0 || (jpeg[i + 1] & 0xFF) == 0xC2)) {
                sof = i;
                break;
            }
        }
        assertTrue(sof > 0, "a frame header");
        byte[] jpegBomb = jpeg.clone();
        ByteBuffer.wrap(jpegBomb, sof + 5, 4).putShort((short) 50_000).putShort((short) 50_000); // height, width (unsigned)
        return jpegBomb;
    }

    /** A GIF of {@code frames} 2x2 frames, the first red, the others blue. */
    public static byte[] gif(int frames) throws Exception {
        ImageWriter w = ImageIO.getImageWritersByFormatName("gif").next();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ImageOutputStream out = ImageIO.createImageOutputStream(bytes)) {
            w.setOutput(out);
            w.prepareWriteSequence(null);
            for (int i = 0; i < frames; i++) {
                BufferedImage f = new BufferedImage(2, 2, BufferedImage.TYPE_BYTE_INDEXED);
                f.setRGB(0, 0, i == 0 ? 0xFF0000 : 0x0000FF);
                w.writeToSequence(new IIOImage(f, null, null), null);
            }
            w.endWriteSequence();
        } finally {
            w.dispose();
        }
        return bytes.toByteArray();
    }

    /** An 8x8 four-channel (Adobe CMYK) JPEG. */
    public static byte[] cmykJpeg() throws Exception {
        WritableRaster r = Raster.createInterleavedRaster(DataBuffer.TYPE_BYTE, 8, 8, 4, null);
        ImageWriter w = ImageIO.getImageWritersByFormatName("jpeg").next();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ImageOutputStream out = ImageIO.createImageOutputStream(bytes)) {
            w.setOutput(out);
            w.write(null, new IIOImage(r, null, null), null); // four channels: an Adobe CMYK JPEG
        } finally {
            w.dispose();
        }
        return bytes.toByteArray();
    }

    static long ms(long t0) {
        return (System.nanoTime() - t0) / 1_000_000;
    }

    @Test
    void decompressionBombsAreRefusedFromTheirHeader() throws Exception {
        byte[] pngBomb = png(50_000, 50_000, deflate(new byte[50_001], 4));
        long t0 = System.nanoTime();
        ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.probe(pngBomb));
        assertTrue(e.getMessage().contains("50000x50000") && e.getMessage().contains("exceeds the limit"), e.getMessage());
        assertThrows(ImageDecodeException.class, () -> decoder.decode(pngBomb));
        byte[] jpegBomb = jpegBomb();
        e = assertThrows(ImageDecodeException.class, () -> decoder.decode(jpegBomb));
        assertTrue(e.getMessage().contains("50000x50000"), e.getMessage());
        assertTrue(ms(t0) < 2000, "refused at once: " + ms(t0) + " ms");
    }

    @Test
    void aZlibBombCostsOnlyTheImageItDeclares() {
        // 1000 x 1000 gray declared; the IDAT inflates to 200 MB of zeros
        byte[] bomb = png(1000, 1000, deflate(new byte[1 << 20], 200));
        assertTrue(bomb.length < 1 << 20, bomb.length + " bytes");
        long t0 = System.nanoTime();
        RgbImage img = decoder.decode(bomb);
        assertEquals(1000, img.width());
        assertTrue(ms(t0) < 3000, "the rows it declares, not the 200 MB: " + ms(t0) + " ms");
    }

    @Test
    void aGifOfTenThousandFramesCostsItsFirstFrame() throws Exception {
        byte[] gif = gif(10_000);
        long t0 = System.nanoTime();
        RgbImage img = decoder.decode(gif);
        assertEquals(2, img.width());
        assertTrue((img.pixels()[0] & 0xFF) > 200, "the first frame, as PIL opens a GIF");
        assertTrue(ms(t0) < 1000, ms(t0) + " ms");
    }

    @Test
    void aCmykJpegIsRefusedSayingWhy() throws Exception {
        byte[] cmyk = cmykJpeg();
        ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode(cmyk));
        assertTrue(e.getMessage().length() > 10, e.getMessage());
    }

    @Test
    void sixteenBitRgbKeepsTheHighByteAsPil() throws Exception {
        ComponentColorModel cm = new ComponentColorModel(ColorSpace.getInstance(ColorSpace.CS_sRGB), new int[] {16, 16, 16},
                false, false, Transparency.OPAQUE, DataBuffer.TYPE_USHORT);
        WritableRaster raster = cm.createCompatibleWritableRaster(2, 1);
        raster.setPixel(0, 0, new int[] {0x1234, 0xABCD, 0xFFFF});
        raster.setPixel(1, 0, new int[] {0x00FF, 0x0100, 0x8000});
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(new BufferedImage(cm, raster, false, null), "png", out);
        RgbImage img = decoder.decode(out.toByteArray());
        int[] got = new int[6];
        for (int i = 0; i < 6; i++) {
            got[i] = img.pixels()[i] & 0xFF;
        }
        assertEquals(java.util.List.of(0x12, 0xAB, 0xFF, 0x00, 0x01, 0x80), java.util.Arrays.stream(got).boxed().toList());
    }

    @Test
    void truncatedPngsAndJpegsAreRefused() throws Exception {
        BufferedImage img = new BufferedImage(64, 64, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 64; y++) {
            for (int x = 0; x < 64; x++) {
                img.setRGB(x, y, x * 4 << 16 | y * 4 << 8 | (x ^ y) * 4);
            }
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(img, "png", png);
        for (byte[] whole : new byte[][] {png.toByteArray(), jpeg(img)}) {
            for (double f : new double[] {0.1, 0.5, 0.9}) {
                byte[] cut = java.util.Arrays.copyOf(whole, (int) (whole.length * f));
                ImageDecodeException e = assertThrows(ImageDecodeException.class, () -> decoder.decode(cut), "cut at " + f);
                assertTrue(e.getMessage() != null && !e.getMessage().isBlank());
            }
        }
    }

    /**
     * What a request is checked with before it queues for the model keeps few pixels (subsampled to 64 a side) but
     * reads every byte: it refuses what decoding refuses, for the same reason, at sizes that subsample.
     */
    @Test
    void validationRefusesWhatDecodingRefusesForTheSameReason() throws Exception {
        java.util.SplittableRandom r = new java.util.SplittableRandom(3);
        BufferedImage img = new BufferedImage(700, 500, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 500; y++) {
            for (int x = 0; x < 700; x++) {
                img.setRGB(x, y, r.nextInt(1 << 24) & 0x3F3F3F | x / 3 << 16 | y / 2 << 8);
            }
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(img, "png", png);
        int refused = 0;
        for (byte[] whole : new byte[][] {png.toByteArray(), jpeg(img), cmykJpeg()}) {
            for (double f : new double[] {0.1, 0.5, 0.9, 0.99, 1.0}) {
                byte[] bytes = java.util.Arrays.copyOf(whole, (int) (whole.length * f));
                String decoded = null;
                try {
                    decoder.decode(bytes);
                } catch (ImageDecodeException e) {
                    decoded = e.getMessage();
                }
                String validated = null;
                try {
                    assertEquals(java.util.List.of(700, 500), java.util.Arrays.stream(decoder.validate(bytes)).boxed().toList());
                } catch (ImageDecodeException e) {
                    validated = e.getMessage();
                }
                assertEquals(decoded, validated, "cut at " + f);
                refused += decoded == null ? 0 : 1;
            }
        }
        assertTrue(refused >= 10, "the cut images and the CMYK one are refused: " + refused);
    }
}
