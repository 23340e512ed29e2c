package io.blip2stream.train.scenes;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * How a question of each kind is worded: templates with synonyms, in three sets. {@link Set#CANONICAL} is the one
 * wording per kind the first scene models learnt (and their model cards' examples ask); {@link Set#TRAINING} is what
 * {@code train} now teaches, many templates and synonyms for each kind (colour/color, shapes/objects/things,
 * picture/image/photo, "how many ... can you see", "where in the picture"); {@link Set#HELD_OUT} is never trained on,
 * templates of its own and words the training set never uses ("items", "figures", "pic"), to measure whether a model
 * reads a question it has not seen.
 *
 * <p>Placeholders: {@code {things}} the objects (the shape's noun or a generic one, by count), {@code {objects}} a
 * generic noun only, {@code {are}}/{@code {do}}/{@code {they}}/{@code {these}} agreeing with the count,
 * {@code {color}} colour or color, {@code {picture}} a word for the image, {@code {asked}} the colour a yes/no
 * question asks about (the scene's, or another: half each).
 */
public final class Phrasings {
    private Phrasings() {}

    /**
     * {@code TRAINING_NOISY}: the training templates, with the objects' noun replaced, one time in
     * {@value #NOISE_ONE_IN}, by a made-up word (random letters, "s" when there are several): what the language model
     * and stage 2 train on, so that a question is read by its question words ("what shape", "where", "how many")
     * and not by a noun it may never have seen. The tokenizer's corpus and the evaluation use {@code TRAINING}.
     */
    public enum Set { CANONICAL, TRAINING, TRAINING_NOISY, HELD_OUT }

    static final int NOISE_ONE_IN = 5;

    private static final Map<Set, Map<Scene.QuestionAnswer.Kind, List<String>>> TEMPLATES = new EnumMap<>(Set.class);

    static {
        Map<Scene.QuestionAnswer.Kind, List<String>> canonical = new EnumMap<>(Scene.QuestionAnswer.Kind.class);
        canonical.put(Scene.QuestionAnswer.Kind.COLOUR, List.of("what color {are} the {shape}?"));
        canonical.put(Scene.QuestionAnswer.Kind.COUNT, List.of("how many shapes are there?"));
        canonical.put(Scene.QuestionAnswer.Kind.SHAPE, List.of("what shape {are} {they}?"));
        canonical.put(Scene.QuestionAnswer.Kind.PLACE, List.of("where {are} the {shape}?"));
        canonical.put(Scene.QuestionAnswer.Kind.YES_NO, List.of("{are} the {shape} {asked}?"));
        TEMPLATES.put(Set.CANONICAL, canonical);

        Map<Scene.QuestionAnswer.Kind, List<String>> training = new EnumMap<>(Scene.QuestionAnswer.Kind.class);
        training.put(Scene.QuestionAnswer.Kind.COLOUR, List.of(
                "what {color} {are} the {things}?", "what {color} {are} {they}?", "which {color} {are} the {things}?",
                "what is the {color} of the {things}?", "what {color} {do} the {things} have?",
                "tell me the {color} of the {things}.", "what {color} {are} the {things} in the {picture}?",
                "what {color} {are} the {things} in this {picture}?"));
        training.put(Scene.QuestionAnswer.Kind.COUNT, List.of(
                "how many shapes are there?", "how many {plural} are there?", "how many {plural} can you see?",
                "how many {plural} are in the {picture}?", "what is the number of {plural}?", "count the {plural}.",
                "how many {plural} do you see?"));
        training.put(Scene.QuestionAnswer.Kind.SHAPE, List.of(
                "what shape {are} {they}?", "what shape {are} the {objects}?", "what kind of {objects} {are} {these}?",
                "which shape do you see?", "what shape {are} the {objects} in the {picture}?",
                "what is the shape of the {objects}?"));
        training.put(Scene.QuestionAnswer.Kind.PLACE, List.of(
                "where {are} the {things}?", "where {are} {they}?", "where in the {picture} {are} the {things}?",
                "in which part of the {picture} {are} the {things}?", "where {are} the {things} located?",
                "where {are} the {things} in the {picture}?"));
        training.put(Scene.QuestionAnswer.Kind.YES_NO, List.of(
                "{are} the {things} {asked}?", "{are} {they} {asked}?", "{are} the {things} in the {picture} {asked}?",
                "{are} the {things} {asked} ones?", "is the {color} of the {things} {asked}?"));
        TEMPLATES.put(Set.TRAINING, training);
        TEMPLATES.put(Set.TRAINING_NOISY, training);

        Map<Scene.QuestionAnswer.Kind, List<String>> heldOut = new EnumMap<>(Scene.QuestionAnswer.Kind.class);
        heldOut.put(Scene.QuestionAnswer.Kind.COLOUR, List.of(
                "can you tell me what {color} the {things} {are}?", "which {color} do you see?",
                "what {color} {are} the {unseen} in the pic?"));
        heldOut.put(Scene.QuestionAnswer.Kind.COUNT, List.of(
                "how many {unseen} do you count?", "what number of {plural} does the {picture} show?",
                "how many {plural} can be seen?"));
        heldOut.put(Scene.QuestionAnswer.Kind.SHAPE, List.of(
                "what type of shape {are} {these}?", "which kind of {objects} can you see?",
                "what shape {do} the {unseen} have?"));
        heldOut.put(Scene.QuestionAnswer.Kind.PLACE, List.of(
                "in what part of the {picture} {are} the {things}?", "where can you find the {things}?",
                "where {do} the {unseen} appear?"));
        heldOut.put(Scene.QuestionAnswer.Kind.YES_NO, List.of(
                "would you say the {things} {are} {asked}?", "{are} the {unseen} {asked}?",
                "{are} the {things} {asked} in {color}?"));
        TEMPLATES.put(Set.HELD_OUT, heldOut);
    }

    /** The templates of one kind in one set. */
    public static List<String> templates(Set set, Scene.QuestionAnswer.Kind kind) {
        return TEMPLATES.get(set).get(kind);
    }

    private static final String[] GENERIC = {"shape", "object", "thing"};
    private static final String[] UNSEEN = {"item", "figure"};
    private static final String[] PICTURE = {"picture", "image", "photo"};

    /**
     * One of {@code set}'s templates for {@code kind}, drawn by {@code r} and filled for scene {@code s};
     * {@code asked} is the colour a yes/no question names.
     */
    static String question(Set set, Scene.QuestionAnswer.Kind kind, Scene s, Scene.Colour asked, SplittableRandom r) {
        List<String> ts = templates(set, kind);
        boolean one = s.count() == 1;
        String t = fill(ts.get(set == Set.CANONICAL ? 0 : r.nextInt(ts.size())), one)
                .replace("{shape}", s.shape().noun(s.count())).replace("{asked}", asked.word());
        if (set == Set.CANONICAL) {
            return t; // draws nothing from r: the canonical questions, and what r draws after them, stay as they were
        }
        String generic = set == Set.TRAINING_NOISY && r.nextInt(NOISE_ONE_IN) == 0 ? madeUp(r) : GENERIC[r.nextInt(GENERIC.length)];
        String unseen = UNSEEN[r.nextInt(UNSEEN.length)];
        boolean noise = set == Set.TRAINING_NOISY && !GENERIC_WORDS.contains(generic);
        return t.replace("{things}", !noise && r.nextInt(3) > 0 ? s.shape().noun(s.count()) : one ? generic : generic + "s")
                .replace("{plural}", r.nextBoolean() ? s.shape().noun(2) : generic + "s")
                .replace("{objects}", one ? generic : generic + "s")
                .replace("{unseen}", one ? unseen : unseen + "s")
                .replace("{color}", r.nextBoolean() ? "color" : "colour")
                .replace("{picture}", PICTURE[r.nextInt(PICTURE.length)]);
    }

    private static final java.util.Set<String> GENERIC_WORDS = java.util.Set.of(GENERIC);

    /** A made-up noun of 3 to 7 letters, never one of the held-out words. */
    static String madeUp(SplittableRandom r) {
        while (true) {
            StringBuilder b = new StringBuilder();
            int n = 3 + r.nextInt(5);
            for (int i = 0; i < n; i++) {
                b.append((char) ('a' + r.nextInt(26)));
            }
            String w = b.toString();
            if (!List.of(UNSEEN).contains(w) && !w.equals("pic")) {
                return w;
            }
        }
    }

    /** The words that agree with the count. */
    private static String fill(String template, boolean one) {
        return template.replace("{are}", one ? "is" : "are").replace("{do}", one ? "does" : "do")
                .replace("{they}", one ? "it" : "they").replace("{these}", one ? "this" : "these");
    }
}
