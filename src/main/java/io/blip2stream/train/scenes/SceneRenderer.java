package io.blip2stream.train.scenes;

import io.blip2stream.model.image.RgbImage;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Path2D;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.SplittableRandom;

import javax.imageio.ImageIO;

/** Renders a {@link Scene} with Java2D (antialiased), headless, into RGB pixels or a PNG. */
public final class SceneRenderer {

    private SceneRenderer() {}

    public static RgbImage render(Scene scene, int size) {
        BufferedImage img = image(scene, size);
        byte[] px = new byte[size * size * 3];
        for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
                int rgb = img.getRGB(x, y);
                int o = (y * size + x) * 3;
                px[o] = (byte) (rgb >> 16);
                px[o + 1] = (byte) (rgb >> 8);
                px[o + 2] = (byte) rgb;
            }
        }
        return new RgbImage(size, size, px);
    }

    public static byte[] png(Scene scene, int size) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ImageIO.write(image(scene, size), "png", out);
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static BufferedImage image(Scene scene, int size) {
        BufferedImage img = new BufferedImage(size, size, BufferedImage.TYPE_INT_RGB);
        int[] bg = scene.background();
        SplittableRandom noise = new SplittableRandom(scene.seed() ^ 0xB6L);
        for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
                int n = scene.noise() == 0 ? 0 : noise.nextInt(-scene.noise(), scene.noise() + 1);
                img.setRGB(x, y, (clamp(bg[0] + n) << 16) | (clamp(bg[1] + n) << 8) | clamp(bg[2] + n));
            }
        }
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
            Scene.Colour c = scene.colour();
            g.setColor(new Color(c.r, c.g, c.b));
            for (Scene.Item item : scene.items()) {
                draw(g, scene.shape(), item.cx() * size, item.cy() * size, item.size() * size);
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    /** One object centred at (cx, cy), its bounding square of side s, in pixels. */
    private static void draw(Graphics2D g, Scene.Shape shape, double cx, double cy, double s) {
        double h = s / 2;
        switch (shape) {
            case CIRCLE -> g.fill(new Ellipse2D.Double(cx - h, cy - h, s, s));
            case SQUARE -> {
                double q = h * 0.88; // about the circle's area
                g.fill(new Rectangle2D.Double(cx - q, cy - q, 2 * q, 2 * q));
            }
            case TRIANGLE -> {
                Path2D.Double p = new Path2D.Double();
                p.moveTo(cx, cy - h);
                p.lineTo(cx + h, cy + h);
                p.lineTo(cx - h, cy + h);
                p.closePath();
                g.fill(p);
            }
            case CROSS -> {
                double t = s / 6; // half the arm's thickness
                g.fill(new Rectangle2D.Double(cx - h, cy - t, s, 2 * t));
                g.fill(new Rectangle2D.Double(cx - t, cy - h, 2 * t, s));
            }
        }
    }

    private static int clamp(int v) {
        return Math.max(0, Math.min(255, v));
    }
}
