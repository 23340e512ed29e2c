package io.blip2stream.engine;

import io.blip2stream.model.generation.GenerationParams;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Jobs typed by task: each task's input holds what it needs, and nothing of another task's. */
class InferenceJobTest {
    static final byte[] IMAGE = {1, 2, 3};
    static final RequestTexts.Encoded PROMPT = new RequestTexts.Encoded(new int[] {2, 7}, null);
    static final RequestTexts.Encoded TEXTS = new RequestTexts.Encoded(null, List.of(new int[] {5}, new int[] {6}));

    static InferenceJob job(Task task, byte[] image, String question, List<String> texts, RequestTexts.Encoded encoded,
                            GenerationParams params) {
        return InferenceJob.of("r-1", task, image, null, question, texts, encoded, params, false, 0, InferenceJob.NO_DEADLINE);
    }

    @Test
    void eachTaskGetsItsOwnInput() {
        InferenceJob caption = job(Task.CAPTION, IMAGE, null, List.of(), PROMPT, GenerationParams.greedy(5));
        assertInstanceOf(InferenceJob.Caption.class, caption.input());
        assertEquals(5, caption.generation().params().maxNewTokens());
        assertThrows(IllegalStateException.class, caption::retrieval, "a caption has no texts to retrieve with");

        InferenceJob vqa = job(Task.VQA, IMAGE, "what is it?", List.of(), PROMPT, GenerationParams.greedy(5));
        assertEquals("what is it?", ((InferenceJob.Vqa) vqa.input()).question());

        InferenceJob match = job(Task.MATCH, IMAGE, null, List.of("a", "b"), TEXTS, null);
        assertEquals(List.of("a", "b"), match.retrieval().texts());
        assertThrows(IllegalStateException.class, match::generation, "a match generates nothing");

        InferenceJob textsOnly = job(Task.EMBED, null, null, List.of("a", "b"), TEXTS, null);
        assertEquals(null, textsOnly.imageDigest(), "no image, no cache key");
    }

    @Test
    void aTaskWithoutWhatItNeedsIsNoJob() {
        assertThrows(NullPointerException.class, () -> job(Task.CAPTION, IMAGE, null, List.of(), TEXTS, GenerationParams.greedy(5)),
                "a caption without its prompt's ids");
        assertThrows(NullPointerException.class, () -> job(Task.VQA, IMAGE, null, List.of(), PROMPT, GenerationParams.greedy(5)),
                "a vqa without its question");
        assertThrows(NullPointerException.class, () -> job(Task.MATCH, null, null, List.of("a", "b"), TEXTS, null),
                "a match without an image");
        assertThrows(IllegalArgumentException.class, () -> job(Task.EMBED, null, null, List.of(), new RequestTexts.Encoded(null, List.of()), null),
                "an embed of nothing");
    }

    @Test
    void theContentDigestIsWhatTheTaskAsks() {
        InferenceJob a = job(Task.MATCH, IMAGE, null, List.of("a", "b"), TEXTS, null);
        InferenceJob same = job(Task.MATCH, IMAGE, null, List.of("a", "b"), TEXTS, null);
        InferenceJob other = job(Task.MATCH, IMAGE, null, List.of("a", "c"), TEXTS, null);
        assertEquals(a.contentDigest(), same.contentDigest());
        assertNotEquals(a.contentDigest(), other.contentDigest());
        assertNotEquals(a.contentDigest(), job(Task.EMBED, IMAGE, null, List.of("a", "b"), TEXTS, null).contentDigest());
    }
}
