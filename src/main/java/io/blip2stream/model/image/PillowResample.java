package io.blip2stream.model.image;

/**
 * A port of Pillow's separable resampling on 8-bit images ({@code libImaging/Resample.c}, Pillow 9.4), the
 * resize BLIP-2 was trained with: per output pixel a window of input pixels weighted by the filter, the window
 * widened by the scale when downscaling, weights normalised then rounded to 22-bit fixed point, a horizontal
 * pass over the rows the vertical pass needs, then a vertical pass, each rounding and clipping to uint8.
 * No Java imaging library reproduces these numbers; this does, bit for bit.
 */
public final class PillowResample {
    private static final int PRECISION_BITS = 32 - 8 - 2;

    /** Pillow's filters with their support (the half width of the kernel at scale 1). */
    public enum Filter {
        BILINEAR(1.0) {
            @Override
            double weight(double x) {
                if (x < 0.0) {
                    x = -x;
                }
                return x < 1.0 ? 1.0 - x : 0.0;
            }
        },
        BICUBIC(2.0) {
            @Override
            double weight(double x) {
                final double a = -0.5;
                if (x < 0.0) {
                    x = -x;
                }
                if (x < 1.0) {
                    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
                }
                if (x < 2.0) {
                    return (((x - 5) * x + 8) * x - 4) * a;
                }
                return 0.0;
            }
        },
        LANCZOS(3.0) {
            @Override
            double weight(double x) {
                if (-3.0 <= x && x < 3.0) {
                    return sinc(x) * sinc(x / 3.0);
                }
                return 0.0;
            }
        };

        final double support;

        Filter(double support) {
            this.support = support;
        }

        abstract double weight(double x);

        private static double sinc(double x) {
            if (x == 0.0) {
                return 1.0;
            }
            x = x * Math.PI;
            return Math.sin(x) / x;
        }

        /** PIL's resample numbers: 1 LANCZOS, 2 BILINEAR, 3 BICUBIC. */
        public static Filter fromPil(int resample) {
            switch (resample) {
                case 1:
                    return LANCZOS;
                case 2:
                    return BILINEAR;
                case 3:
                    return BICUBIC;
                default:
                    throw new IllegalArgumentException("resample " + resample + " is not supported (1 LANCZOS, 2 BILINEAR, 3 BICUBIC)");
            }
        }
    }

    /** The window and fixed-point weights of each output pixel along one axis. */
    private record Coefficients(int ksize, int[] bounds, int[] weights) {}

    private PillowResample() {}

    /**
     * Resizes interleaved 8-bit pixels.
     *
     * @param src      [h][w][channels] bytes
     * @param channels samples per pixel
     * @return [outH][outW][channels] bytes
     */
    public static byte[] resize(byte[] src, int w, int h, int channels, int outW, int outH, Filter filter) {
        if (w <= 0 || h <= 0 || outW <= 0 || outH <= 0) {
            throw new IllegalArgumentException("image sizes must be positive");
        }
        boolean needHorizontal = outW != w;
        boolean needVertical = outH != h;
        Coefficients horiz = coefficients(w, 0f, w, outW, filter);
        Coefficients vert = coefficients(h, 0f, h, outH, filter);
        byte[] img = src;
        int curW = w;
        int curH = h;
        if (needHorizontal) {
            // rows the vertical pass will read
            int yFirst = vert.bounds()[0];
            int yLast = vert.bounds()[outH * 2 - 2] + vert.bounds()[outH * 2 - 1];
            if (!needVertical) {
                yFirst = 0;
                yLast = h;
            } else {
                for (int i = 0; i < outH; i++) {
                    vert.bounds()[i * 2] -= yFirst;
                }
            }
            img = horizontal(img, curW, channels, yFirst, yLast - yFirst, outW, horiz);
            curW = outW;
            curH = yLast - yFirst;
        }
        if (needVertical) {
            img = vertical(img, curW, curH, channels, outH, vert);
        } else if (!needHorizontal) {
            img = src.clone();
        }
        return img;
    }

    /** precompute_coeffs, then normalize_coeffs_8bpc. */
    private static Coefficients coefficients(int inSize, float in0, float in1, int outSize, Filter filter) {
        double scale = (double) (in1 - in0) / outSize;
        double filterscale = Math.max(scale, 1.0);
        double support = filter.support * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        double[] kk = new double[outSize * ksize];
        int[] bounds = new int[outSize * 2];
        for (int xx = 0; xx < outSize; xx++) {
            double center = in0 + (xx + 0.5) * scale;
            double ww = 0.0;
            double ss = 1.0 / filterscale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) {
                xmin = 0;
            }
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) {
                xmax = inSize;
            }
            xmax -= xmin;
            int base = xx * ksize;
            for (int x = 0; x < xmax; x++) {
                double wgt = filter.weight((x + xmin - center + 0.5) * ss);
                kk[base + x] = wgt;
                ww += wgt;
            }
            for (int x = 0; x < xmax; x++) {
                if (ww != 0.0) {
                    kk[base + x] /= ww;
                }
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        int[] fixed = new int[kk.length];
        for (int i = 0; i < kk.length; i++) {
            fixed[i] = kk[i] < 0
                    ? (int) (-0.5 + kk[i] * (1 << PRECISION_BITS))
                    : (int) (0.5 + kk[i] * (1 << PRECISION_BITS));
        }
        return new Coefficients(ksize, bounds, fixed);
    }

    private static byte[] horizontal(byte[] in, int inW, int ch, int yOffset, int outH, int outW, Coefficients c) {
        byte[] out = new byte[outH * outW * ch];
        int[] ss = new int[ch];
        for (int yy = 0; yy < outH; yy++) {
            int row = (yy + yOffset) * inW * ch;
            for (int xx = 0; xx < outW; xx++) {
                int xmin = c.bounds()[xx * 2];
                int xmax = c.bounds()[xx * 2 + 1];
                int k = xx * c.ksize();
                java.util.Arrays.fill(ss, 1 << (PRECISION_BITS - 1));
                for (int x = 0; x < xmax; x++) {
                    int p = row + (x + xmin) * ch;
                    int wgt = c.weights()[k + x];
                    for (int b = 0; b < ch; b++) {
                        ss[b] += (in[p + b] & 0xff) * wgt;
                    }
                }
                int o = (yy * outW + xx) * ch;
                for (int b = 0; b < ch; b++) {
                    out[o + b] = clip8(ss[b]);
                }
            }
        }
        return out;
    }

    private static byte[] vertical(byte[] in, int w, int inH, int ch, int outH, Coefficients c) {
        byte[] out = new byte[outH * w * ch];
        int[] ss = new int[ch];
        for (int yy = 0; yy < outH; yy++) {
            int k = yy * c.ksize();
            int ymin = c.bounds()[yy * 2];
            int ymax = c.bounds()[yy * 2 + 1];
            for (int xx = 0; xx < w; xx++) {
                java.util.Arrays.fill(ss, 1 << (PRECISION_BITS - 1));
                for (int y = 0; y < ymax; y++) {
                    int p = ((y + ymin) * w + xx) * ch;
                    int wgt = c.weights()[k + y];
                    for (int b = 0; b < ch; b++) {
                        ss[b] += (in[p + b] & 0xff) * wgt;
                    }
                }
                int o = (yy * w + xx) * ch;
                for (int b = 0; b < ch; b++) {
                    out[o + b] = clip8(ss[b]);
                }
            }
        }
        return out;
    }

    private static byte clip8(int in) {
        if (in >= (1 << PRECISION_BITS << 8)) {
            return (byte) 255;
        }
        if (in <= 0) {
            return 0;
        }
        return (byte) (in >> PRECISION_BITS);
    }
}
