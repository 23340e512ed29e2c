package io.blip2stream.model.image;

/**
 * The EXIF orientation of a JPEG (APP1 "Exif") or PNG ({@code eXIf} chunk), applied to decoded pixels the way
 * transformers' {@code load_image} applies it ({@code PIL.ImageOps.exif_transpose}): a phone photo taken upright
 * is upright for the model too. Only the orientation tag (0x0112) of the first IFD is read; anything malformed
 * reads as 1 (as stored), never as an error.
 */
public final class ExifOrientation {
    private ExifOrientation() {}

    /** The orientation, 1 to 8, of an encoded image; 1 when it has none. */
    public static int of(byte[] b) {
        try {
            if (b.length > 4 && (b[0] & 0xFF) == 0xFF && (b[1] & 0xFF) == 0xD8) {
                return jpeg(b);
            }
            if (b.length > 8 && (b[0] & 0xFF) == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G') {
                return png(b);
            }
        } catch (RuntimeException e) {
            return 1; // a malformed tag never stops an image that decodes
        }
        return 1;
    }

    private static int jpeg(byte[] b) {
        int p = 2;
        while (p + 4 <= b.length) {
            if ((b[p] & 0xFF) != 0xFF) {
                return 1;
            }
            int marker = b[p + 1] & 0xFF;
            if (marker == 0xD8 || marker >= 0xD0 && marker <= 0xD7 || marker == 0x01) {
                p += 2; // markers without a length
                continue;
            }
            if (marker == 0xDA || marker == 0xD9) {
                return 1; // the scan starts: no EXIF before it
            }
            int len = u16(b, p + 2, false);
            int data = p + 4;
            if (marker == 0xE1 && len >= 8 && data + 6 <= b.length && b[data] == 'E' && b[data + 1] == 'x'
                    && b[data + 2] == 'i' && b[data + 3] == 'f' && b[data + 4] == 0 && b[data + 5] == 0) {
                return tiff(b, data + 6, Math.min(b.length, p + 2 + len));
            }
            p += 2 + len;
        }
        return 1;
    }

    private static int png(byte[] b) {
        int p = 8;
        while (p + 12 <= b.length) {
            int len = (int) Math.min(Integer.MAX_VALUE, u32(b, p, false));
            String type = new String(b, p + 4, 4, java.nio.charset.StandardCharsets.ISO_8859_1);
            int data = p + 8;
            if (type.equals("eXIf")) {
                int end = Math.min(b.length, data + len);
                // some writers keep the JPEG "Exif\0\0" prefix
                if (end - data >= 6 && b[data] == 'E' && b[data + 1] == 'x' && b[data + 2] == 'i' && b[data + 3] == 'f') {
                    data += 6;
                }
                return tiff(b, data, end);
            }
            if (type.equals("IDAT") || type.equals("IEND")) {
                return 1; // PIL reads eXIf only before the image data
            }
            p = data + len + 4;
        }
        return 1;
    }

    /** The orientation tag of the TIFF structure at {@code start} (its header), within {@code end}. */
    private static int tiff(byte[] b, int start, int end) {
        if (start + 8 > end) {
            return 1;
        }
        boolean little;
        if (b[start] == 'I' && b[start + 1] == 'I') {
            little = true;
        } else if (b[start] == 'M' && b[start + 1] == 'M') {
            little = false;
        } else {
            return 1;
        }
        long ifd = u32(b, start + 4, little);
        if (ifd < 8 || start + ifd + 2 > end) {
            return 1;
        }
        int p = (int) (start + ifd);
        int entries = u16(b, p, little);
        p += 2;
        for (int i = 0; i < entries && p + 12 <= end; i++, p += 12) {
            if (u16(b, p, little) == 0x0112) {
                int type = u16(b, p + 2, little);
                int v = type == 3 ? u16(b, p + 8, little) : type == 4 ? (int) u32(b, p + 8, little) : 1;
                return v >= 1 && v <= 8 ? v : 1;
            }
        }
        return 1;
    }

    private static int u16(byte[] b, int p, boolean little) {
        int a = b[p] & 0xFF;
        int c = b[p + 1] & 0xFF;
        return little ? a | c << 8 : a << 8 | c;
    }

    private static long u32(byte[] b, int p, boolean little) {
        long v = 0;
        for (int i = 0; i < 4; i++) {
            int x = b[p + (little ? 3 - i : i)] & 0xFF;
            v = v << 8 | x;
        }
        return v;
    }

    /**
     * The image as PIL's {@code exif_transpose} leaves it: 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom,
     * 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
     */
    public static RgbImage apply(RgbImage img, int orientation) {
        if (orientation <= 1 || orientation > 8) {
            return img;
        }
        int w = img.width();
        int h = img.height();
        boolean swap = orientation >= 5;
        int ow = swap ? h : w;
        int oh = swap ? w : h;
        byte[] in = img.pixels();
        byte[] out = new byte[in.length];
        for (int y = 0; y < oh; y++) {
            for (int x = 0; x < ow; x++) {
                int sx;
                int sy;
                switch (orientation) {
                    case 2 -> { sx = w - 1 - x; sy = y; }
                    case 3 -> { sx = w - 1 - x; sy = h - 1 - y; }
                    case 4 -> { sx = x; sy = h - 1 - y; }
                    case 5 -> { sx = y; sy = x; }
                    case 6 -> { sx = y; sy = h - 1 - x; }
                    case 7 -> { sx = w - 1 - y; sy = h - 1 - x; }
                    default -> { sx = w - 1 - y; sy = x; } // 8
                }
                System.arraycopy(in, (sy * w + sx) * 3, out, (y * ow + x) * 3, 3);
            }
        }
        return new RgbImage(ow, oh, out);
    }
}
