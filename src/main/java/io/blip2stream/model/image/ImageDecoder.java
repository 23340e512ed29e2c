package io.blip2stream.model.image;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Iterator;

/**
 * Decodes PNG, JPEG, BMP and GIF (first frame) and converts to RGB the way PIL's {@code convert("RGB")} does:
 * alpha is dropped without blending, grayscale is replicated, palettes are looked up, 16-bit colour samples
 * keep their high byte and 16-bit grayscale is clipped to 255 (PIL's "I" to "RGB"). Samples are read from the
 * raster, never through a colour profile, since PIL ignores embedded profiles here too. An EXIF orientation
 * (JPEG or PNG) is applied as transformers' {@code load_image} applies it ({@link ExifOrientation}).
 * The size is checked from the header before any pixel is decoded.
 */
public final class ImageDecoder {
    /** PIL's {@code Image.MAX_IMAGE_PIXELS}: larger images are refused as decompression bombs. */
    public static final long DEFAULT_MAX_PIXELS = 89_478_485L;

    private final long maxPixels;

    public ImageDecoder() {
        this(DEFAULT_MAX_PIXELS);
    }

    public ImageDecoder(long maxPixels) {
        this.maxPixels = maxPixels;
    }

    /** Width and height from the image's header, checked against the pixel limit, without decoding pixels. */
    public int[] probe(byte[] bytes) {
        return read(bytes, Mode.HEADER).size();
    }

    /**
     * Refuses what {@link #decode} refuses (the header, the pixel limit, data that is cut short or corrupt, colour
     * models), decoding the whole image but keeping at most {@value #VALIDATE_SIDE} pixels a side: every byte is
     * read, little memory is held. What a request is checked with before it waits for the model.
     */
    public int[] validate(byte[] bytes) {
        return read(bytes, Mode.VALIDATE).size();
    }

    public RgbImage decode(byte[] bytes) {
        return read(bytes, Mode.DECODE).image();
    }

    private static final int VALIDATE_SIDE = 64;

    private enum Mode { HEADER, VALIDATE, DECODE }

    private record Read(int[] size, RgbImage image) {}

    private Read read(byte[] bytes, Mode mode) {
        if (bytes == null || bytes.length == 0) {
            throw new ImageDecodeException("empty image");
        }
        try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(bytes))) {
            Iterator<ImageReader> readers = ImageIO.getImageReaders(in);
            if (!readers.hasNext()) {
                throw new ImageDecodeException("not an image (PNG, JPEG, BMP and GIF are supported)");
            }
            ImageReader reader = readers.next();
            try {
                reader.setInput(in, true, true);
                String format = reader.getFormatName().toUpperCase(java.util.Locale.ROOT);
                int w = reader.getWidth(0);
                int h = reader.getHeight(0);
                if (w <= 0 || h <= 0) {
                    throw new ImageDecodeException(format + " image has no pixels (" + w + "x" + h + ")");
                }
                if ((long) w * h > maxPixels) {
                    throw new ImageDecodeException(format + " image of " + w + "x" + h + " pixels exceeds the limit of "
                            + maxPixels + " pixels");
                }
                if (mode == Mode.HEADER) {
                    return new Read(new int[] {w, h}, null);
                }
                java.util.List<String> warnings = new java.util.ArrayList<>();
                reader.addIIOReadWarningListener((source, warning) -> warnings.add(warning));
                javax.imageio.ImageReadParam param = reader.getDefaultReadParam();
                if (mode == Mode.VALIDATE) {
                    int step = Math.max(1, (Math.max(w, h) + VALIDATE_SIDE - 1) / VALIDATE_SIDE);
                    param.setSourceSubsampling(step, step, 0, 0);
                }
                BufferedImage img = reader.read(0, param);
                for (String warning : warnings) {
                    // ImageIO fills a truncated JPEG with gray; PIL (and so transformers) refuses it
                    if (warning.toLowerCase(java.util.Locale.ROOT).contains("premature end")) {
                        throw new ImageDecodeException(format + " image is truncated: " + warning);
                    }
                }
                if (mode == Mode.VALIDATE) {
                    toRgb(img); // its colour model is one decode converts
                    return new Read(new int[] {w, h}, null);
                }
                // EXIF orientation applied as transformers' load_image applies it (PIL's exif_transpose)
                return new Read(new int[] {w, h}, ExifOrientation.apply(toRgb(img), ExifOrientation.of(bytes)));
            } finally {
                reader.dispose();
            }
        } catch (ImageDecodeException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            throw new ImageDecodeException("cannot decode image: " + why, e);
        }
    }

    /** PIL's convert("RGB") on the decoded samples. */
    static RgbImage toRgb(BufferedImage img) {
        int w = img.getWidth();
        int h = img.getHeight();
        Raster r = img.getRaster();
        ColorModel cm = img.getColorModel();
        byte[] out = new byte[w * h * 3];
        if (cm instanceof IndexColorModel icm) {
            int n = icm.getMapSize();
            byte[] rs = new byte[n];
            byte[] gs = new byte[n];
            byte[] bs = new byte[n];
            icm.getReds(rs);
            icm.getGreens(gs);
            icm.getBlues(bs);
            int[] idx = new int[w];
            for (int y = 0; y < h; y++) {
                r.getSamples(0, y, w, 1, 0, idx);
                for (int x = 0; x < w; x++) {
                    int o = (y * w + x) * 3;
                    int i = Math.min(idx[x], n - 1);
                    out[o] = rs[i];
                    out[o + 1] = gs[i];
                    out[o + 2] = bs[i];
                }
            }
            return new RgbImage(w, h, out);
        }
        int bands = r.getNumBands();
        int colorBands = cm.getNumColorComponents();
        int bits = cm.getComponentSize(0);
        boolean sixteen = r.getTransferType() == DataBuffer.TYPE_USHORT || bits > 8;
        if (colorBands != 1 && colorBands != 3) {
            throw new ImageDecodeException("images with " + colorBands + " colour components (such as CMYK) are not supported");
        }
        int[] row = new int[w * bands];
        for (int y = 0; y < h; y++) {
            r.getPixels(0, y, w, 1, row);
            for (int x = 0; x < w; x++) {
                int o = (y * w + x) * 3;
                int p = x * bands;
                if (colorBands == 1) {
                    int v = row[p];
                    // 16-bit gray opens in PIL as "I" and converts by clipping; gray+alpha ("LA;16B") keeps the high byte
                    int g = sixteen ? (bands == 1 ? Math.min(v, 255) : v >>> 8) : v;
                    out[o] = out[o + 1] = out[o + 2] = (byte) g;
                } else {
                    for (int c = 0; c < 3; c++) {
                        int v = row[p + c];
                        out[o + c] = (byte) (sixteen ? v >>> 8 : v);
                    }
                }
            }
        }
        return new RgbImage(w, h, out);
    }
}
