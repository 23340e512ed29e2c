package io.blip2stream.model.image;

import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * EXIF orientations 1 to 8 are applied as PIL's {@code ImageOps.exif_transpose} (what transformers' load_image
 * calls) applies them, from a PNG's eXIf chunk (both byte orders) and a JPEG's APP1; a malformed tag is ignored.
 */
public class ExifOrientationTest {
    // a 3x2 image, a b c / d e f, each pixel a colour of its own
    static final int[][] A = {{10, 0, 0}, {20, 0, 0}, {30, 0, 0}, {40, 0, 0}, {50, 0, 0}, {60, 0, 0}};

    /** What exif_transpose gives for each orientation, as the letters of the source pixels, row by row. */
    static final String[] EXPECTED = {null, "abc/def", "cba/fed", "fed/cba", "def/abc", "ad/be/cf", "da/eb/fc", "fc/eb/da",
            "cf/be/ad"};

    public static byte[] png3x2() throws Exception {
        BufferedImage img = new BufferedImage(3, 2, BufferedImage.TYPE_INT_RGB);
        for (int i = 0; i < 6; i++) {
            img.setRGB(i % 3, i / 3, A[i][0] << 16 | A[i][1] << 8 | A[i][2]);
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    /** A TIFF structure holding one IFD with the orientation tag. */
    public static byte[] tiff(int orientation, boolean little) {
        ByteBuffer b = ByteBuffer.allocate(26).order(little ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN);
        b.put((byte) (little ? 'I' : 'M')).put((byte) (little ? 'I' : 'M')).putShort((short) 42).putInt(8);
        b.putShort((short) 1);                                                          // one entry
        b.putShort((short) 0x0112).putShort((short) 3).putInt(1).putShort((short) orientation).putShort((short) 0);
        b.putInt(0);                                                                    // no next IFD
        return b.array();
    }

    public static byte[] withPngChunk(byte[] png, String type, byte[] data) {
        // after the signature (8) and IHDR (4 + 4 + 13 + 4)
        int at = 8 + 25;
        ByteBuffer chunk = ByteBuffer.allocate(12 + data.length);
        chunk.putInt(data.length).put(type.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1)).put(data);
        CRC32 crc = new CRC32();
        crc.update(chunk.array(), 4, 4 + data.length);
        chunk.putInt((int) crc.getValue());
        byte[] out = new byte[png.length + chunk.capacity()];
        System.arraycopy(png, 0, out, 0, at);
        System.arraycopy(chunk.array(), 0, out, at, chunk.capacity());
        System.arraycopy(png, at, out, at + chunk.capacity(), png.length - at);
        return out;
    }

    static String letters(RgbImage img) {
        StringBuilder s = new StringBuilder();
        for (int y = 0; y < img.height(); y++) {
            if (y > 0) {
                s.append('/');
            }
            for (int x = 0; x < img.width(); x++) {
                int r = img.pixels()[(y * img.width() + x) * 3] & 0xFF;
                s.append((char) ('a' + r / 10 - 1));
            }
        }
        return s.toString();
    }

    @Test
    void everyOrientationOfAPngAsExifTransposeGivesIt() throws Exception {
        byte[] png = png3x2();
        ImageDecoder decoder = new ImageDecoder();
        assertEquals("abc/def", letters(decoder.decode(png)), "no EXIF: as stored");
        for (int o = 1; o <= 8; o++) {
            for (boolean little : new boolean[] {true, false}) {
                byte[] tagged = withPngChunk(png, "eXIf", tiff(o, little));
                assertEquals(o, ExifOrientation.of(tagged));
                RgbImage img = decoder.decode(tagged);
                assertEquals(EXPECTED[o], letters(img), "orientation " + o + (little ? " (II)" : " (MM)"));
                assertEquals(o >= 5 ? 2 : 3, img.width());
                assertArrayEquals(new int[] {3, 2}, decoder.probe(tagged), "the header's size, before any pixel");
            }
        }
    }

    @Test
    void aJpegsApp1OrientationRotatesIt() throws Exception {
        BufferedImage img = new BufferedImage(16, 8, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 8; y++) {
            for (int x = 0; x < 16; x++) {
                img.setRGB(x, y, x < 8 ? 0xFF0000 : 0x0000FF); // red left, blue right
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "jpeg", out);
        byte[] jpeg = out.toByteArray();
        byte[] tiff = tiff(6, true);
        ByteBuffer app1 = ByteBuffer.allocate(4 + 6 + tiff.length);
        app1.put((byte) 0xFF).put((byte) 0xE1).putShort((short) (2 + 6 + tiff.length)).put("Exif\0\0".getBytes()).put(tiff);
        byte[] tagged = new byte[jpeg.length + app1.capacity()];
        System.arraycopy(jpeg, 0, tagged, 0, 2); // SOI, then APP1
        System.arraycopy(app1.array(), 0, tagged, 2, app1.capacity());
        System.arraycopy(jpeg, 2, tagged, 2 + app1.capacity(), jpeg.length - 2);
        assertEquals(6, ExifOrientation.of(tagged));
        RgbImage r = new ImageDecoder().decode(tagged);
        assertEquals(8, r.width());
        assertEquals(16, r.height());
        // rotated 90 degrees clockwise: the red left half is now the top half
        assertTrue((r.pixels()[(3 * 8 + 4) * 3] & 0xFF) > 200 && (r.pixels()[(3 * 8 + 4) * 3 + 2] & 0xFF) < 60, "red on top");
        assertTrue((r.pixels()[(12 * 8 + 4) * 3 + 2] & 0xFF) > 200 && (r.pixels()[(12 * 8 + 4) * 3] & 0xFF) < 60, "blue below");
    }

    @Test
    void aMalformedTagIsIgnored() throws Exception {
        byte[] png = png3x2();
        byte[] truncated = java.util.Arrays.copyOf(tiff(6, true), 12); // the IFD cut off
        byte[] bad = withPngChunk(png, "eXIf", truncated);
        assertEquals(1, ExifOrientation.of(bad));
        assertEquals("abc/def", letters(new ImageDecoder().decode(bad)));
        assertEquals(1, ExifOrientation.of(withPngChunk(png, "eXIf", tiff(9, false))), "9 is no orientation");
        assertEquals(1, ExifOrientation.of(new byte[] {(byte) 0xFF, (byte) 0xD8, (byte) 0xFF, (byte) 0xE1, 0x7F, 0x7F}));
    }
}
