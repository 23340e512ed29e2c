package io.blip2stream.engine;

/**
 * Soft visual prompts already computed, by image and model: the Q-Former's output does not depend on the prompt or
 * the question, so a second request about the same image skips the vision encoder and the Q-Former.
 * Implementations may be remote (the cluster's); a failing cache behaves as a miss.
 */
public interface VisualPromptCache {
    VisualPromptCache NONE = new VisualPromptCache() {
        @Override
        public float[] get(String key) {
            return null;
        }

        @Override
        public void put(String key, float[] visualPrompt) {
        }
    };

    /** The visual prompt [Q * W] stored under {@code key}, or null. */
    float[] get(String key);

    void put(String key, float[] visualPrompt);
}
