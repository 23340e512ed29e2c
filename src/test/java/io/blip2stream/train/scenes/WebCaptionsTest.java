package io.blip2stream.train.scenes;

import org.junit.jupiter.api.Test;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The noisy-web captions: their share, their kinds, and that each kind is what it says. */
class WebCaptionsTest {

    @Test
    void halfTheCaptionsAreNoiseOfThreeKindsAndTheRestAreTrue() {
        int n = 3000;
        Map<WebCaptions.Noise, Integer> kinds = new EnumMap<>(WebCaptions.Noise.class);
        for (int i = 0; i < n; i++) {
            Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            WebCaptions.WebCaption c = WebCaptions.of(s, i);
            assertEquals(c, WebCaptions.of(s, i), "decided by the index alone");
            kinds.merge(c.noise(), 1, Integer::sum);
            switch (c.noise()) {
                case CLEAN -> assertEquals(s.caption(), c.text());
                case WRONG -> {
                    assertNotEquals(s.caption(), c.text());
                    List<String> truth = List.of(s.caption().split(" "));
                    List<String> said = List.of(c.text().split(" "));
                    assertTrue(said.stream().anyMatch(w -> !truth.contains(w)) || truth.stream().anyMatch(w -> !said.contains(w)),
                            c.text() + " for " + s.caption());
                    assertTrue(c.text().matches("(a|an|two|three|four) \\w+ \\w+ (on the|at the|in the) \\w+"), c.text());
                }
                case PARTIAL -> {
                    assertNotEquals(s.caption(), c.text());
                    assertTrue(c.text().split(" ").length < s.caption().split(" ").length, c.text());
                    for (String w : c.text().split(" ")) { // every word true of the scene
                        assertTrue(w.equals("shapes") || s.caption().contains(w) || w.startsWith(s.shape().noun(1)), w + " in " + c.text());
                    }
                }
                case UNRELATED -> assertNotEquals(s.caption(), c.text());
            }
        }
        double noisy = 1 - kinds.get(WebCaptions.Noise.CLEAN) / (double) n;
        assertTrue(noisy > 0.47 && noisy < 0.53, "noisy share " + noisy);
        for (WebCaptions.Noise k : List.of(WebCaptions.Noise.WRONG, WebCaptions.Noise.PARTIAL, WebCaptions.Noise.UNRELATED)) {
            assertTrue(kinds.get(k) > n * 0.14, k + ": " + kinds.get(k));
        }
    }
}
