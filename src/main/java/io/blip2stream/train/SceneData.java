package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.image.BlipImageProcessor;
import io.blip2stream.model.image.PillowResample;
import io.blip2stream.model.image.RgbImage;
import io.blip2stream.model.text.TextTokenizer;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneGenerator;
import io.blip2stream.train.scenes.SceneRenderer;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Training batches from the scenes: which scenes a step sees (a fixed training set of {@code trainSize} scenes,
 * reshuffled every epoch by a seeded permutation, so a step's batch depends on the step alone), their pixels
 * through the model's own image processor after augmentation, and tokenised texts, right-padded.
 *
 * <p>Augmentation, as BLIP-2's pre-training: a random resized crop (here of 80-100% of the area, kept only if every
 * object stays whole inside it, so that count and place stay true) and a horizontal flip where the caption stays
 * true (not for groups on the left or right).
 */
final class SceneData {
    static final double MIN_CROP_AREA = 0.8;

    private final int first;
    private final int trainSize;
    private final long prime; // the smallest prime >= trainSize, for permute
    private final long seed;
    private final int imageSize;
    private final BlipImageProcessor processor;
    private final TextTokenizer tokenizer;
    private final Map<SceneKey, String> captions; // null: every scene's own caption, and its questions

    /** A scene as a corpus knows it (a scene's background is an array, so the record's equality is the instance's). */
    private record SceneKey(long seed, String caption) {
        static SceneKey of(Scene s) {
            return new SceneKey(s.seed(), s.caption());
        }
    }

    SceneData(int trainSize, long seed, int imageSize, PreprocessorConfig pre, TextTokenizer tokenizer) {
        this(0, trainSize, seed, imageSize, new BlipImageProcessor(pre), tokenizer, null);
    }

    private SceneData(int first, int trainSize, long seed, int imageSize, BlipImageProcessor processor,
                      TextTokenizer tokenizer, Map<SceneKey, String> captions) {
        if (trainSize < 1) {
            throw new IllegalArgumentException("a training set needs a scene, got " + trainSize);
        }
        this.first = first;
        this.trainSize = trainSize;
        this.prime = nextPrime(trainSize);
        this.seed = seed;
        this.imageSize = imageSize;
        this.processor = processor;
        this.tokenizer = tokenizer;
        this.captions = captions;
    }

    /**
     * A corpus of image-text pairs as the web gives them (CapFilt's): the training scenes {@code first} to
     * {@code first + size - 1}, each with the text {@code captions} gives it (the same images, augmentation and
     * tokenizer). Such a corpus has captions only: no questions (a web caption says nothing a question could be
     * answered from) and no twins (a twin's caption is not in the corpus).
     */
    SceneData corpus(int first, int size, java.util.function.Function<Scene, String> captions) {
        Map<SceneKey, String> texts = new java.util.HashMap<>();
        for (int i = first; i < first + size; i++) {
            Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            texts.put(SceneKey.of(s), java.util.Objects.requireNonNull(captions.apply(s), "a scene's text"));
        }
        return new SceneData(first, size, seed, imageSize, processor, tokenizer, Map.copyOf(texts));
    }

    /** Whether the texts include questions about the scenes (false for a {@linkplain #corpus corpus}: captions only). */
    boolean hasQuestions() {
        return captions == null;
    }

    /** What the training text says about {@code s}: its caption, or the corpus's text for it. */
    String caption(Scene s) {
        if (captions == null) {
            return s.caption();
        }
        String c = captions.get(SceneKey.of(s));
        if (c == null) {
            throw new IllegalArgumentException("not a scene of this corpus: " + s.caption());
        }
        return c;
    }

    /** The training scenes of step {@code step} at batch size {@code batch}. */
    List<Scene> batch(int step, int batch) {
        List<Scene> out = new ArrayList<>(batch);
        for (int i = 0; i < batch; i++) {
            long k = (long) step * batch + i;
            int epoch = (int) (k / trainSize);
            out.add(SceneGenerator.sample(SceneGenerator.Split.TRAIN, first + permute(k % trainSize, epoch)));
        }
        return out;
    }

    /**
     * Half a batch of training scenes, each followed by its {@linkplain SceneGenerator#twin twin} (the same scene
     * with one attribute changed): in-batch negatives that differ from a row in one attribute only, which random
     * batches of these scenes seldom hold (two groups on opposite sides, or of three and four objects, in the same
     * batch of 32). The twins are drawn from the training scenes' own seeds. A {@linkplain #corpus corpus} has no
     * twins: its batch is the plain one.
     */
    List<Scene> batchWithTwins(int step, int batch, SplittableRandom random) {
        if (captions != null) {
            return batch(step, batch);
        }
        List<Scene> out = new ArrayList<>(batch);
        for (Scene s : batch(step, (batch + 1) / 2)) {
            out.add(s);
            if (out.size() < batch) {
                out.add(SceneGenerator.twin(s, random));
            }
        }
        return out;
    }

    /** A bijection of [0, trainSize) per epoch: a random affine map modulo a prime above the size, cycled into range. */
    private long permute(long i, int epoch) {
        long p = prime;
        SplittableRandom r = new SplittableRandom(seed * 31 + epoch);
        long a = 1 + r.nextLong(p - 1);
        long b = r.nextLong(p);
        long x = i;
        do {
            x = (Math.floorMod(a * x + b, p));
        } while (x >= trainSize);
        return x;
    }

    private static long nextPrime(long n) {
        for (long c = Math.max(2, n); ; c++) {
            boolean prime = true;
            for (long d = 2; d * d <= c; d++) {
                if (c % d == 0) {
                    prime = false;
                    break;
                }
            }
            if (prime) {
                return c;
            }
        }
    }

    /** Pixel values [B, 3, H, W] of the scenes, augmented when {@code augment} (draws from {@code random}). */
    NDArray pixels(NDManager scope, List<Scene> scenes, boolean augment, SplittableRandom random) {
        int hw = imageSize * imageSize;
        float[] out = new float[scenes.size() * 3 * hw];
        for (int i = 0; i < scenes.size(); i++) {
            RgbImage img = SceneRenderer.render(scenes.get(i), imageSize);
            if (augment) {
                img = augment(scenes.get(i), img, random);
            }
            System.arraycopy(processor.preprocess(img), 0, out, i * 3 * hw, 3 * hw);
        }
        return scope.create(out, new Shape(scenes.size(), 3, imageSize, imageSize));
    }

    RgbImage augment(Scene scene, RgbImage img, SplittableRandom random) {
        int n = imageSize;
        // the box every object lies in, in pixels
        double x0 = n;
        double y0 = n;
        double x1 = 0;
        double y1 = 0;
        for (Scene.Item it : scene.items()) {
            x0 = Math.min(x0, (it.cx() - it.size() / 2) * n);
            y0 = Math.min(y0, (it.cy() - it.size() / 2) * n);
            x1 = Math.max(x1, (it.cx() + it.size() / 2) * n);
            y1 = Math.max(y1, (it.cy() + it.size() / 2) * n);
        }
        for (int attempt = 0; attempt < 10; attempt++) {
            double area = MIN_CROP_AREA + random.nextDouble() * (1 - MIN_CROP_AREA);
            double aspect = Math.exp((random.nextDouble() - 0.5) * 2 * Math.log(1.15));
            int w = (int) Math.round(n * Math.sqrt(area * aspect));
            int h = (int) Math.round(n * Math.sqrt(area / aspect));
            if (w > n || h > n || w < 8 || h < 8) {
                continue;
            }
            int cx = random.nextInt(n - w + 1);
            int cy = random.nextInt(n - h + 1);
            if (cx <= x0 && cy <= y0 && cx + w >= x1 && cy + h >= y1) {
                img = crop(img, cx, cy, w, h);
                byte[] px = PillowResample.resize(img.pixels(), w, h, 3, n, n, PillowResample.Filter.BICUBIC);
                img = new RgbImage(n, n, px);
                break;
            }
        }
        if (scene.place().survivesHorizontalFlip() && random.nextBoolean()) {
            img = flip(img);
        }
        return img;
    }

    static RgbImage crop(RgbImage img, int x, int y, int w, int h) {
        byte[] out = new byte[w * h * 3];
        for (int r = 0; r < h; r++) {
            System.arraycopy(img.pixels(), ((y + r) * img.width() + x) * 3, out, r * w * 3, w * 3);
        }
        return new RgbImage(w, h, out);
    }

    static RgbImage flip(RgbImage img) {
        int w = img.width();
        byte[] out = new byte[img.pixels().length];
        for (int y = 0; y < img.height(); y++) {
            for (int x = 0; x < w; x++) {
                System.arraycopy(img.pixels(), (y * w + x) * 3, out, (y * w + (w - 1 - x)) * 3, 3);
            }
        }
        return new RgbImage(w, img.height(), out);
    }

    /** Token ids of each text (with the leading {@code </s>}), then {@code suffix} if not negative. */
    int[] encode(String text, int suffix) {
        int[] ids = tokenizer.encode(text);
        if (suffix < 0) {
            return ids;
        }
        int[] out = java.util.Arrays.copyOf(ids, ids.length + 1);
        out[ids.length] = suffix;
        return out;
    }

    /** Right-pads rows with {@code <pad>} to the longest. */
    static int[][] pad(List<int[]> rows) {
        int t = rows.stream().mapToInt(r -> r.length).max().orElse(0);
        int[][] out = new int[rows.size()][t];
        for (int i = 0; i < rows.size(); i++) {
            java.util.Arrays.fill(out[i], SceneTokenizer.PAD);
            System.arraycopy(rows.get(i), 0, out[i], 0, rows.get(i).length);
        }
        return out;
    }

    static int[][] mask(int[][] ids) {
        int[][] m = new int[ids.length][];
        for (int i = 0; i < ids.length; i++) {
            m[i] = new int[ids[i].length];
            for (int j = 0; j < ids[i].length; j++) {
                m[i][j] = ids[i][j] == SceneTokenizer.PAD ? 0 : 1;
            }
        }
        return m;
    }
}
