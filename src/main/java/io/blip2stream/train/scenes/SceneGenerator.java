package io.blip2stream.train.scenes;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Draws scenes deterministically: scene {@code i} of a split depends on the split's seed and {@code i} only, so
 * any scene can be drawn again alone, in any order, on any machine. The training and held-out splits draw from
 * seeds that never meet.
 */
public final class SceneGenerator {

    /** The two splits: the scenes to train on, and the held-out scenes evaluation measures on. */
    public enum Split {
        TRAIN(0x5EED_0001L), HELDOUT(0x5EED_0002L);

        final long base;

        Split(long base) {
            this.base = base;
        }
    }

    static final double MIN_SIZE = 0.15;
    static final double MAX_SIZE = 0.19;
    static final double GAP = 0.015;

    private SceneGenerator() {}

    /** The seed of scene {@code index} of {@code split}: a SplitMix64 finalisation of both, so neighbours differ. */
    public static long seedOf(Split split, long index) {
        long z = split.base * 0x9E3779B97F4A7C15L + index;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public static Scene sample(Split split, long index) {
        return fromSeed(seedOf(split, index));
    }

    /** A scene with every attribute drawn uniformly, then a layout that keeps the objects apart and in their place. */
    public static Scene fromSeed(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int count = 1 + r.nextInt(Scene.MAX_COUNT);
        Scene.Shape shape = Scene.Shape.values()[r.nextInt(Scene.Shape.values().length)];
        Scene.Colour colour = Scene.Colour.values()[r.nextInt(Scene.Colour.values().length)];
        Scene.Place place = Scene.Place.values()[r.nextInt(Scene.Place.values().length)];
        return layout(count, shape, colour, place, r, seed);
    }

    /** A scene with the given attributes and a layout drawn from {@code seed}. */
    public static Scene of(int count, Scene.Shape shape, Scene.Colour colour, Scene.Place place, long seed) {
        return layout(count, shape, colour, place, new SplittableRandom(seed), seed);
    }

    /**
     * The scene with one attribute changed, drawn by {@code random}: the count by one up or down, another shape or
     * colour, or the place (the opposite side for left, right, top and bottom); a new layout from the scene's seed.
     */
    public static Scene twin(Scene s, SplittableRandom random) {
        int count = s.count();
        Scene.Shape shape = s.shape();
        Scene.Colour colour = s.colour();
        Scene.Place place = s.place();
        switch (random.nextInt(4)) {
            case 0 -> count = count == 1 ? 2 : count == Scene.MAX_COUNT ? count - 1 : count + (random.nextBoolean() ? 1 : -1);
            case 1 -> shape = other(Scene.Shape.values(), shape, random);
            case 2 -> colour = other(Scene.Colour.values(), colour, random);
            default -> place = switch (place) {
                case LEFT -> Scene.Place.RIGHT;
                case RIGHT -> Scene.Place.LEFT;
                case TOP -> Scene.Place.BOTTOM;
                case BOTTOM -> Scene.Place.TOP;
                case MIDDLE -> other(Scene.Place.values(), place, random);
            };
        }
        return of(count, shape, colour, place, s.seed());
    }

    private static <T> T other(T[] values, T not, SplittableRandom random) {
        T v;
        do {
            v = values[random.nextInt(values.length)];
        } while (v == not);
        return v;
    }

    private static Scene layout(int count, Scene.Shape shape, Scene.Colour colour, Scene.Place place, SplittableRandom r,
                                long seed) {
        // a light, low-saturation background
        int base = 205 + r.nextInt(45);
        int[] bg = {clamp(base + r.nextInt(-12, 13)), clamp(base + r.nextInt(-12, 13)), clamp(base + r.nextInt(-12, 13))};
        int noise = r.nextInt(9);
        for (int attempt = 0; ; attempt++) {
            double shrink = Math.pow(0.95, attempt / 50); // crowded draws get smaller objects
            List<Scene.Item> items = new ArrayList<>();
            for (int tries = 0; items.size() < count && tries < 200; tries++) {
                double s = (MIN_SIZE + r.nextDouble() * (MAX_SIZE - MIN_SIZE)) * shrink;
                double cx = place.x0 + s / 2 + r.nextDouble() * (place.x1 - place.x0 - s);
                double cy = place.y0 + s / 2 + r.nextDouble() * (place.y1 - place.y0 - s);
                Scene.Item candidate = new Scene.Item(cx, cy, s);
                if (items.stream().allMatch(o -> apart(o, candidate))) {
                    items.add(candidate);
                }
            }
            if (items.size() == count) {
                return new Scene(count, shape, colour, place, items, bg, noise, seed);
            }
        }
    }

    private static boolean apart(Scene.Item a, Scene.Item b) {
        double need = (a.size() + b.size()) / 2 + GAP;
        return Math.abs(a.cx() - b.cx()) >= need || Math.abs(a.cy() - b.cy()) >= need;
    }

    private static int clamp(int v) {
        return Math.max(0, Math.min(255, v));
    }
}
