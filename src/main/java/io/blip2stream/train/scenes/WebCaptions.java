package io.blip2stream.train.scenes;

import java.util.SplittableRandom;

/**
 * The noisy-web variant of the training scenes' captions, as alt text is: a documented share ({@link #NOISY}) of
 * them is noise of one of three kinds, a third each, and the rest is the scene's true caption.
 * <ul>
 *   <li>{@link Noise#WRONG}: the caption of the same scene wrong in one or more attributes (count, colour, shape,
 *   place): "two blue circles on the left" for two red ones, as a caption written for another photo of a set;</li>
 *   <li>{@link Noise#PARTIAL}: true but partial, one or two attributes alone ("red circles", "circles on the left",
 *   "two circles", "shapes at the top"), as a file's title or a tag is;</li>
 *   <li>{@link Noise#UNRELATED}: about something else: alt text that says nothing of the image ("image 4021", "click to
 *   enlarge") or the caption of another scene.</li>
 * </ul>
 * A scene's web caption is decided by its index alone, so every run and every tool sees the same one.
 */
public final class WebCaptions {
    private WebCaptions() {}

    /** The share of training captions that are noise (the issue asks for at least 40%). */
    public static final double NOISY = 0.5;

    /** What kind of caption a scene's web caption is. */
    public enum Noise { CLEAN, WRONG, PARTIAL, UNRELATED }

    /** A web caption and what it is; {@code right} when it is the scene's true caption. */
    public record WebCaption(String text, Noise noise) {
        public boolean noisy() {
            return noise != Noise.CLEAN;
        }
    }

    static final String[] ALT_TEXT = {"image", "photo", "click to enlarge", "untitled", "free stock picture", "screenshot",
            "logo", "thumbnail", "download now", "img", "banner", "see more"};

    /** The web caption of training scene {@code index}. */
    public static WebCaption of(Scene s, long index) {
        SplittableRandom r = new SplittableRandom(index * 7919L + 104_729L);
        if (r.nextDouble() >= NOISY) {
            return new WebCaption(s.caption(), Noise.CLEAN);
        }
        return switch (r.nextInt(3)) {
            case 0 -> new WebCaption(wrong(s, r), Noise.WRONG);
            case 1 -> new WebCaption(partial(s, r), Noise.PARTIAL);
            default -> new WebCaption(unrelated(s, index, r), Noise.UNRELATED);
        };
    }

    /** The caption with one attribute changed, or (a third of the time) two. */
    static String wrong(Scene s, SplittableRandom r) {
        int count = s.count();
        Scene.Colour colour = s.colour();
        Scene.Shape shape = s.shape();
        Scene.Place place = s.place();
        int changes = r.nextInt(3) == 0 ? 2 : 1;
        boolean[] changed = new boolean[4];
        for (int c = 0; c < changes; c++) {
            int a;
            do {
                a = r.nextInt(4);
            } while (changed[a]);
            changed[a] = true;
            switch (a) {
                case 0 -> count = other(count - 1, Scene.MAX_COUNT, r) + 1;
                case 1 -> colour = Scene.Colour.values()[other(colour.ordinal(), Scene.Colour.values().length, r)];
                case 2 -> shape = Scene.Shape.values()[other(shape.ordinal(), Scene.Shape.values().length, r)];
                default -> place = Scene.Place.values()[other(place.ordinal(), Scene.Place.values().length, r)];
            }
        }
        return Scene.caption(count, colour, shape, place);
    }

    private static int other(int value, int n, SplittableRandom r) {
        return (value + 1 + r.nextInt(n - 1)) % n;
    }

    /** One or two of the scene's attributes, nothing else. */
    static String partial(Scene s, SplittableRandom r) {
        String shapes = s.shape().noun(2);
        return switch (r.nextInt(5)) {
            case 0 -> s.colour().word() + " " + shapes;
            case 1 -> shapes + " " + s.place().phrase();
            case 2 -> s.count() > 1 ? Scene.COUNT_WORDS[s.count()] + " " + shapes : s.shape().noun(1);
            case 3 -> "shapes " + s.place().phrase();
            default -> s.colour().word() + " shapes";
        };
    }

    /** Alt text about nothing in the image, or another training scene's caption. */
    static String unrelated(Scene s, long index, SplittableRandom r) {
        if (r.nextBoolean()) {
            String alt = ALT_TEXT[r.nextInt(ALT_TEXT.length)];
            return r.nextBoolean() ? alt + " " + (1 + r.nextInt(9999)) : alt;
        }
        String other;
        long j = index;
        do {
            j = j + 1 + r.nextInt(997);
            other = SceneGenerator.sample(SceneGenerator.Split.TRAIN, j).caption();
        } while (other.equals(s.caption()));
        return other;
    }
}
