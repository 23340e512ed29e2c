package io.blip2stream.engine;

import io.blip2stream.common.Sha256;
import io.blip2stream.model.generation.GenerationParams;

import java.util.List;

/**
 * One validated request on its way to a model, its texts tokenized already ({@link RequestTexts}), so that the
 * worker that runs it never tokenizes. What it asks is typed by task ({@link Input}): a caption or a question to
 * generate from, or texts to match or embed.
 *
 * @param id            the request id: every output carries it
 * @param input         what the request asks, one record per task
 * @param stream        report each token as it is generated
 * @param acceptedNanos when the service took the request (System.nanoTime), for queued_ms and total_ms
 * @param deadlineNanos the System.nanoTime after which no work starts for it and its generation stops
 *                      (finish_reason timeout); {@link #NO_DEADLINE} for none
 * @param cancellation  this request's own cancellation (its generation stops at its next token once set)
 * @param imageDigest   the image's SHA-256 (hex), or null without an image: the visual-prompt cache's key
 * @param contentDigest a fingerprint of what the request asks ({@link #digest}): the same request sent again under
 *                      the same id is recognised by it
 */
public record InferenceJob(String id, Input input, boolean stream, long acceptedNanos, long deadlineNanos,
                           Cancellation cancellation, String imageDigest, String contentDigest) {
    public static final long NO_DEADLINE = Long.MAX_VALUE;

    /** What a request asks: one record per task. */
    public sealed interface Input permits Generation, Retrieval {
        Task task();

        /** The encoded image; null only for an embed of texts alone. */
        byte[] image();
    }

    /**
     * Caption and vqa: the ids the language model reads after the visual prompt (the prompt, or the question in the
     * family's template), and how to generate.
     */
    public sealed interface Generation extends Input permits Caption, Vqa {
        int[] promptIds();

        GenerationParams params();
    }

    /** Match and embed, on the retrieval checkpoint: the texts and their ids. */
    public sealed interface Retrieval extends Input permits Match, Embed {
        List<String> texts();

        List<int[]> textIds();
    }

    /** @param prompt the text the caption continues; null: none */
    public record Caption(byte[] image, String prompt, int[] promptIds, GenerationParams params) implements Generation {
        public Caption {
            requireAll(image, promptIds, params);
        }

        @Override
        public Task task() {
            return Task.CAPTION;
        }
    }

    public record Vqa(byte[] image, String question, int[] promptIds, GenerationParams params) implements Generation {
        public Vqa {
            requireAll(image, question, promptIds, params);
        }

        @Override
        public Task task() {
            return Task.VQA;
        }
    }

    /** ITM and ITC of each text against the image. */
    public record Match(byte[] image, List<String> texts, List<int[]> textIds) implements Retrieval {
        public Match {
            requireAll(image, texts, textIds);
        }

        @Override
        public Task task() {
            return Task.MATCH;
        }
    }

    /** The image's query embeddings and the texts' embeddings: an image, texts (empty: none) or both. */
    public record Embed(byte[] image, List<String> texts, List<int[]> textIds) implements Retrieval {
        public Embed {
            requireAll(texts, textIds);
            if (image == null && texts.isEmpty()) {
                throw new IllegalArgumentException("an embed job has an image, texts or both");
            }
        }

        @Override
        public Task task() {
            return Task.EMBED;
        }
    }

    private static void requireAll(Object... parts) {
        for (Object p : parts) {
            java.util.Objects.requireNonNull(p, "a part of the job's input");
        }
    }

    /**
     * The digests are computed here, once, on the thread that builds the job (the decoder's worker thread): hashing
     * an image of megabytes takes milliseconds, which neither an event loop nor the decode loop should pay.
     */
    public InferenceJob {
        java.util.Objects.requireNonNull(input, "input");
        if (cancellation == null) {
            cancellation = new Cancellation();
        }
        if (imageDigest == null && input.image() != null) {
            imageDigest = Sha256.hex(input.image());
        }
        if (contentDigest == null) {
            contentDigest = digest(input, imageDigest);
        }
    }

    /** A job with its texts' ids ({@link RequestTexts#encode}) and a cancellation of its own. */
    public static InferenceJob of(String id, Task task, byte[] image, String prompt, String question, List<String> texts,
                                  RequestTexts.Encoded encoded, GenerationParams params, boolean stream, long acceptedNanos,
                                  long deadlineNanos) {
        List<String> t = texts == null ? List.of() : texts;
        Input input = switch (task) {
            case CAPTION -> new Caption(image, prompt, encoded.promptIds(), params);
            case VQA -> new Vqa(image, question, encoded.promptIds(), params);
            case MATCH -> new Match(image, t, encoded.textIds());
            case EMBED -> new Embed(image, t, encoded.textIds());
        };
        return new InferenceJob(id, input, stream, acceptedNanos, deadlineNanos, new Cancellation(), null, null);
    }

    public Task task() {
        return input.task();
    }

    /** The encoded image; null only for an embed of texts alone. */
    public byte[] image() {
        return input.image();
    }

    /** What a caption or vqa job generates from; a match or embed job has none (an error to ask). */
    public Generation generation() {
        if (input instanceof Generation g) {
            return g;
        }
        throw new IllegalStateException("a " + task().wireName() + " job generates nothing");
    }

    /** What a match or embed job reads; a caption or vqa job has none (an error to ask). */
    public Retrieval retrieval() {
        if (input instanceof Retrieval r) {
            return r;
        }
        throw new IllegalStateException("a " + task().wireName() + " job has no texts to retrieve with");
    }

    /** The deadline {@code deadlineMs} after acceptance; 0 or less: none. */
    public static long deadline(long acceptedNanos, long deadlineMs) {
        return deadlineMs <= 0 ? NO_DEADLINE : acceptedNanos + java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(deadlineMs);
    }

    /** True once {@code nowNanos} (System.nanoTime) is past the deadline. */
    public boolean pastDeadline(long nowNanos) {
        return deadlineNanos != NO_DEADLINE && nowNanos - deadlineNanos > 0;
    }

    /**
     * A fingerprint of what a request asks (task, image, texts, parameters; not its id, deadline or streaming):
     * SHA-256 of the parts, each length-prefixed, the image by its own digest.
     */
    static String digest(Input input, String imageDigest) {
        String prompt = input instanceof Caption c ? c.prompt() : null;
        String question = input instanceof Vqa v ? v.question() : null;
        List<String> texts = input instanceof Retrieval r ? r.texts() : List.of();
        GenerationParams params = input instanceof Generation g ? g.params() : null;
        List<String> fields = new java.util.ArrayList<>(List.of(input.task().wireName()));
        fields.addAll(java.util.Arrays.asList(imageDigest, prompt, question, String.valueOf(texts.size())));
        fields.addAll(texts);
        fields.add(params == null ? null : params.toString());
        return Sha256.ofFields(fields.toArray(new String[0]));
    }

    /** Whether its owner cancelled it. */
    public boolean cancelled() {
        return cancellation.isCancelled();
    }
}
