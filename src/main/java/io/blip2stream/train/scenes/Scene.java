package io.blip2stream.train.scenes;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A synthetic scene: {@code count} objects of one shape and one colour, grouped in one place of the image, on a
 * plain light background. Its caption and its question/answer pairs are fully determined by those four
 * attributes; where the objects sit inside their place, their sizes and the background vary.
 *
 * @param items      the objects, in unit coordinates of the image (0..1)
 * @param background RGB of the background
 * @param noise      amplitude of the per-pixel background noise (0..)
 * @param seed       the seed that drew the layout (and the rendering noise)
 */
public record Scene(int count, Shape shape, Colour colour, Place place, List<Item> items, int[] background, int noise,
                    long seed) {

    public static final int MAX_COUNT = 4;
    static final String[] COUNT_WORDS = {"zero", "one", "two", "three", "four"};

    /** The object kinds, each symmetric left to right (so a horizontal flip keeps the caption true). */
    public enum Shape {
        CIRCLE, SQUARE, TRIANGLE, CROSS;

        public String noun(int count) {
            String s = name().toLowerCase(Locale.ROOT);
            return count == 1 ? s : s + (this == CROSS ? "es" : "s");
        }
    }

    /** The colours, as saturated RGB values far apart from each other and from the light backgrounds. */
    public enum Colour {
        RED(215, 35, 35), GREEN(30, 160, 60), BLUE(35, 75, 215), YELLOW(235, 200, 20), PURPLE(140, 50, 185),
        ORANGE(245, 130, 20);

        final int r;
        final int g;
        final int b;

        Colour(int r, int g, int b) {
            this.r = r;
            this.g = g;
            this.b = b;
        }

        public String word() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * Where the group sits: a box in unit coordinates that holds every object of the group whole.
     * {@code phrase} ends the caption; {@code word} answers "where".
     */
    public enum Place {
        LEFT("on the left", 0.02, 0.22, 0.42, 0.78),
        RIGHT("on the right", 0.58, 0.22, 0.98, 0.78),
        TOP("at the top", 0.22, 0.02, 0.78, 0.42),
        BOTTOM("at the bottom", 0.22, 0.58, 0.78, 0.98),
        MIDDLE("in the middle", 0.29, 0.29, 0.71, 0.71);

        final String phrase;
        final double x0;
        final double y0;
        final double x1;
        final double y1;

        Place(String phrase, double x0, double y0, double x1, double y1) {
            this.phrase = phrase;
            this.x0 = x0;
            this.y0 = y0;
            this.x1 = x1;
            this.y1 = y1;
        }

        public String phrase() {
            return phrase;
        }

        public String word() {
            return name().toLowerCase(Locale.ROOT);
        }

        /** Whether mirroring the image left to right keeps this place (and so the caption) true. */
        public boolean survivesHorizontalFlip() {
            return this != LEFT && this != RIGHT;
        }
    }

    /** One object: centre and size (the side of its bounding square), in unit coordinates. */
    public record Item(double cx, double cy, double size) {}

    /** A question about the scene and its one-word answer. */
    public record QuestionAnswer(Kind kind, String question, String answer) {
        public enum Kind { COLOUR, COUNT, SHAPE, PLACE, YES_NO }
    }

    public Scene {
        if (count < 1 || count > MAX_COUNT || items.size() != count) {
            throw new IllegalArgumentException("a scene holds 1 to " + MAX_COUNT + " objects, got " + count + "/" + items.size());
        }
        items = List.copyOf(items);
    }

    /** "two red circles on the left", "a blue square in the middle", "an orange cross at the top". */
    public String caption() {
        return caption(count, colour, shape, place);
    }

    /** The caption of a scene with these attributes (what a caption wrong in some of them says). */
    public static String caption(int count, Colour colour, Shape shape, Place place) {
        String first = count > 1 ? COUNT_WORDS[count] : colour == Colour.ORANGE ? "an" : "a";
        return first + " " + colour.word() + " " + shape.noun(count) + " " + place.phrase;
    }

    /** The same scene mirrored left to right: objects keep their shape, LEFT and RIGHT swap. */
    public Scene mirrored() {
        Place p = place == Place.LEFT ? Place.RIGHT : place == Place.RIGHT ? Place.LEFT : place;
        List<Item> m = new ArrayList<>();
        for (Item i : items) {
            m.add(new Item(1 - i.cx(), i.cy(), i.size()));
        }
        return new Scene(count, shape, colour, p, m, background, noise, seed);
    }

    /**
     * One question of each kind in the {@linkplain Phrasings.Set#CANONICAL canonical} wording ("what color are the
     * circles?"). The yes/no question asks about the true colour or another one, as {@code random} decides (half each).
     */
    public List<QuestionAnswer> questions(SplittableRandom random) {
        return questions(random, Phrasings.Set.CANONICAL);
    }

    /** One question of each kind, worded by a template of {@code set} that {@code random} draws. */
    public List<QuestionAnswer> questions(SplittableRandom random, Phrasings.Set set) {
        List<QuestionAnswer> qs = new ArrayList<>();
        qs.add(new QuestionAnswer(QuestionAnswer.Kind.COLOUR, Phrasings.question(set, QuestionAnswer.Kind.COLOUR, this, colour, random),
                colour.word()));
        qs.add(new QuestionAnswer(QuestionAnswer.Kind.COUNT, Phrasings.question(set, QuestionAnswer.Kind.COUNT, this, colour, random),
                COUNT_WORDS[count]));
        qs.add(new QuestionAnswer(QuestionAnswer.Kind.SHAPE, Phrasings.question(set, QuestionAnswer.Kind.SHAPE, this, colour, random),
                shape.noun(1)));
        qs.add(new QuestionAnswer(QuestionAnswer.Kind.PLACE, Phrasings.question(set, QuestionAnswer.Kind.PLACE, this, colour, random),
                place.word()));
        boolean yes = random.nextBoolean();
        Colour asked = colour;
        while (!yes && asked == colour) {
            asked = Colour.values()[random.nextInt(Colour.values().length)];
        }
        qs.add(new QuestionAnswer(QuestionAnswer.Kind.YES_NO, Phrasings.question(set, QuestionAnswer.Kind.YES_NO, this, asked, random),
                yes ? "yes" : "no"));
        return qs;
    }
}
