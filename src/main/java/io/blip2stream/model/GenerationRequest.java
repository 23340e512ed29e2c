package io.blip2stream.model;

/**
 * One row to generate: an image's soft visual prompt [Q, W] and a text prompt (null: none), with its ids when it was
 * tokenized before it reached the model (the service tokenizes on its worker threads, before a request queues).
 */
public record GenerationRequest(float[] visualPrompt, String prompt, int[] promptIds) {
    /** A request whose prompt is tokenized when it runs (the command line, tests). */
    public GenerationRequest(float[] visualPrompt, String prompt) {
        this(visualPrompt, prompt, null);
    }
}
