package io.blip2stream.train.scenes;

import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 25, questions as people ask them: many wordings of each kind to train on, a held-out set of wordings and
 * words never trained on, and the canonical wording the first scene models learnt, unchanged.
 */
class PhrasingsTest {

    static Set<String> questions(Phrasings.Set set, int scenes) {
        Set<String> out = new HashSet<>();
        for (int i = 0; i < scenes; i++) {
            Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            SplittableRandom r = new SplittableRandom(i);
            for (int k = 0; k < 8; k++) {
                s.questions(r, set).forEach(q -> out.add(q.question()));
            }
        }
        return out;
    }

    @Test
    void eachKindHasManyWordingsAndTheHeldOutOnesAreNeverTrainedOn() {
        for (Scene.QuestionAnswer.Kind kind : Scene.QuestionAnswer.Kind.values()) {
            assertTrue(Phrasings.templates(Phrasings.Set.TRAINING, kind).size() >= 5, kind + " training templates");
            assertTrue(Phrasings.templates(Phrasings.Set.HELD_OUT, kind).size() >= 3, kind + " held-out templates");
            for (String t : Phrasings.templates(Phrasings.Set.HELD_OUT, kind)) {
                assertFalse(Phrasings.templates(Phrasings.Set.TRAINING, kind).contains(t), t);
            }
        }
        Set<String> training = questions(Phrasings.Set.TRAINING, 400);
        Set<String> heldOut = questions(Phrasings.Set.HELD_OUT, 400);
        Set<String> both = new HashSet<>(heldOut);
        both.retainAll(training);
        assertEquals(Set.of(), both, "no held-out question is ever a training one");
        // synonyms and forms people use, in the training set
        for (String must : List.of("what colour are the", "what color are the shapes?", "how many objects can you see?",
                "where in the picture", "what kind of", "are the", "is the")) {
            assertTrue(training.stream().anyMatch(q -> q.contains(must)), must);
        }
        // words the training texts never use, in the held-out set: not one of them in the tokenizer's corpus either
        String corpus = String.join(" ", SceneTokenizer.corpus()).toLowerCase(Locale.ROOT);
        for (String unseen : List.of("item", "figure", "pic?", "count?", "appear")) {
            assertTrue(heldOut.stream().anyMatch(q -> (q + " ").contains(unseen)), unseen);
            assertFalse(corpus.contains(unseen), unseen + " in the training texts");
        }
        for (String q : training) {
            assertFalse(q.contains("{") || q.contains("}") || q.contains("  "), q);
        }
        for (String q : heldOut) {
            assertFalse(q.contains("{") || q.contains("}") || q.contains("  "), q);
        }
    }

    /** The noisy training set: the training templates, some with a made-up noun, never a held-out word. */
    @Test
    void theNoisySetMakesUpNounsAndNeverUsesTheHeldOutWords() {
        Set<String> training = questions(Phrasings.Set.TRAINING, 2000);
        List<String> noisy = new java.util.ArrayList<>();
        for (int i = 0; i < 400; i++) {
            SceneGenerator.sample(SceneGenerator.Split.TRAIN, i).questions(new SplittableRandom(i), Phrasings.Set.TRAINING_NOISY)
                    .forEach(q -> noisy.add(q.question()));
        }
        long madeUp = noisy.stream().filter(q -> !training.contains(q)).count();
        // a made-up noun where a generic one would be (one draw in five), and generic nouns stand in about half the questions
        assertTrue(madeUp > noisy.size() / 25 && madeUp < noisy.size() / 5, madeUp + " of " + noisy.size() + " with a made-up noun");
        for (String q : noisy) {
            for (String held : List.of(" item", " figure", " pic?")) {
                assertFalse(q.contains(held), q);
            }
        }
    }

    @Test
    void theCanonicalWordingIsTheOneTheFirstModelsLearnt() {
        Scene two = SceneGenerator.of(2, Scene.Shape.CIRCLE, Scene.Colour.RED, Scene.Place.LEFT, 1);
        List<Scene.QuestionAnswer> qs = two.questions(new SplittableRandom(3));
        assertEquals(List.of("what color are the circles?", "how many shapes are there?", "what shape are they?",
                "where are the circles?"), qs.subList(0, 4).stream().map(Scene.QuestionAnswer::question).toList());
        assertTrue(qs.get(4).question().matches("are the circles (red|green|blue|yellow|purple|orange)\\?"), qs.get(4).question());
        // the answers do not depend on the wording
        for (Phrasings.Set set : Phrasings.Set.values()) {
            List<Scene.QuestionAnswer> other = two.questions(new SplittableRandom(3), set);
            for (int k = 0; k < 4; k++) {
                assertEquals(qs.get(k).answer(), other.get(k).answer(), set + " " + other.get(k).question());
            }
        }
    }
}
