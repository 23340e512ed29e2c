package io.blip2stream.engine;

import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.text.PromptEncoder;
import io.blip2stream.model.text.TextTokenizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The texts of a request, bounded and tokenized before the request reaches a model: the caption prompt or the VQA
 * question in its template (for the generation checkpoint), the texts of match and embed (for the retrieval
 * checkpoint). Called on worker threads, never on an event loop or a decode thread; thread-safe.
 *
 * <p>Every text is bounded before the tokenizer (native code) sees it: in UTF-8 bytes, by its token limit times
 * the vocabulary's longest token ({@link TextTokenizer#maxTokenBytes}), since a longer text cannot fit its tokens;
 * and a text holding a lone UTF-16 surrogate (which JSON's {@code \ud800} escapes can carry, and which no UTF-8
 * tokenizer can read) is refused. Then its tokens are counted against the limits: {@code max_prompt_tokens}, the
 * language model's positions, the Q-Former's positions.
 */
public final class RequestTexts implements AutoCloseable {
    /** A request's texts as ids: the prompt (caption, vqa), and each text (match, embed); null where none. */
    public record Encoded(int[] promptIds, List<int[]> textIds) {}

    private final Side generation; // null: no generation checkpoint
    private final Side retrieval;  // null: no retrieval checkpoint
    private final int maxPromptTokens;

    /** One checkpoint's text side, and its name ({@link Blip2Model#nameOf}). */
    private record Side(String name, Blip2Config config, TextTokenizer tokenizer, PromptEncoder prompts) {}

    private RequestTexts(Side generation, Side retrieval, int maxPromptTokens) {
        this.generation = generation;
        this.retrieval = retrieval;
        this.maxPromptTokens = maxPromptTokens;
    }

    /**
     * Reads the checkpoints' configs and tokenizers (not their weights), as {@link InferenceRunner#load} pairs them.
     *
     * @param generationPath a generation checkpoint, or a retrieval one (then it serves match and embed), or null
     * @param retrievalPath  a retrieval checkpoint, or null
     */
    public static RequestTexts load(Path generationPath, Path retrievalPath, int maxPromptTokens) {
        Side gen = null;
        Side ret = null;
        if (generationPath != null) {
            Side first = side(generationPath);
            if (first.config().isRetrieval()) {
                ret = first;
            } else {
                gen = first;
            }
        }
        if (retrievalPath != null && ret == null) {
            ret = side(retrievalPath);
        }
        return new RequestTexts(gen, ret, maxPromptTokens);
    }

    private static Side side(Path dir) {
        Blip2Config config = Blip2Config.load(dir);
        TextTokenizer tokenizer = TextTokenizer.load(dir);
        return new Side(Blip2Model.nameOf(dir), config, tokenizer, config.isRetrieval() ? null : new PromptEncoder(tokenizer, config.text()));
    }

    /** The generation checkpoint's name (what results call their model), or null when none is loaded. */
    public String generationModel() {
        return generation == null ? null : generation.name();
    }

    /** The retrieval checkpoint's name, or null when none is loaded. */
    public String retrievalModel() {
        return retrieval == null ? null : retrieval.name();
    }

    /** The retrieval checkpoint's embedding size, P (0: none loaded). */
    public int embeddingSize() {
        return retrieval == null ? 0 : retrieval.config().imageTextHiddenSize();
    }

    /** How many query embeddings the generation checkpoint's language model reads before the prompt (0: none loaded). */
    public int visualPromptTokens() {
        return generation == null ? 0 : generation.config().numQueryTokens();
    }

    /** The most UTF-8 bytes a caption prompt or a question may have: {@code max_prompt_tokens} of the longest token. */
    public long maxPromptBytes() {
        return generation == null ? 0 : (long) maxPromptTokens * generation.tokenizer().maxTokenBytes();
    }

    /** The most UTF-8 bytes a text of match or embed may have: the Q-Former's positions of the longest token. */
    public long maxTextBytes() {
        return retrieval == null ? 0 : (long) retrieval.config().qformer().maxPositionEmbeddings() * retrieval.tokenizer().maxTokenBytes();
    }

    /**
     * Bounds and tokenizes a request's texts.
     *
     * @param params the generation parameters (caption, vqa): max_new_tokens counts against the positions
     * @throws RequestError unsupported_task, invalid_request or prompt_too_long, saying which text and why
     */
    public Encoded encode(Task task, String prompt, String question, List<String> texts, GenerationParams params) {
        if (task.generates()) {
            if (generation == null) {
                throw new RequestError(RequestError.UNSUPPORTED_TASK, "no generation model is loaded for task " + task.wireName());
            }
            String text = task == Task.VQA ? question : prompt;
            String field = task == Task.VQA ? "question" : "prompt";
            if (text != null) {
                check(field, text, maxPromptBytes(), "max_prompt_tokens " + maxPromptTokens);
            }
            String full = task == Task.VQA ? generation.prompts().vqaPrompt(question) : prompt;
            int[] ids = generation.prompts().promptIds(full);
            checkPrompt(field, ids, params);
            return new Encoded(ids, null);
        }
        if (retrieval == null) {
            throw new RequestError(RequestError.UNSUPPORTED_TASK, "no retrieval model is loaded for task " + task.wireName());
        }
        if (texts == null || texts.isEmpty()) {
            return new Encoded(null, List.of());
        }
        int positions = retrieval.config().qformer().maxPositionEmbeddings();
        List<int[]> ids = new ArrayList<>(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            String field = "texts[" + i + "]";
            check(field, texts.get(i), maxTextBytes(), "the Q-Former's " + positions + " positions");
            int[] t = retrieval.tokenizer().encode(texts.get(i));
            if (t.length > positions) {
                throw new RequestError(RequestError.PROMPT_TOO_LONG, field + " has " + t.length + " tokens; the Q-Former reads at most "
                        + positions);
            }
            ids.add(t);
        }
        return new Encoded(null, ids);
    }

    private void checkPrompt(String field, int[] ids, GenerationParams params) {
        Blip2Config c = generation.config();
        RequestError tooLong = tooLong(c, field, ids.length, params.maxNewTokens(), maxPromptTokens);
        if (tooLong != null) {
            throw tooLong;
        }
        Integer image = c.imageTokenIndex();
        if (image != null) {
            for (int id : ids) {
                if (id == image) {
                    throw new RequestError(RequestError.INVALID_REQUEST, "the " + field + " holds the image token (id " + image
                            + "), which only the visual prompt may use");
                }
            }
        }
    }

    /**
     * Why a prompt of {@code n} ids (its template included) cannot run with {@code maxNewTokens} on the checkpoint of
     * {@code c}, or null when it can: more than {@code max_prompt_tokens}, or (decoder-only) more positions than the
     * language model has after the queries. The one place for the rule: the runner checks a job's ids by it too.
     */
    static RequestError tooLong(Blip2Config c, String field, int n, int maxNewTokens, int maxPromptTokens) {
        if (n > maxPromptTokens) {
            return new RequestError(RequestError.PROMPT_TOO_LONG, "the " + field + " has " + n + " tokens with the template; the limit is "
                    + maxPromptTokens + " (inference.max_prompt_tokens)");
        }
        if (!c.text().isEncoderDecoder() && c.text() instanceof io.blip2stream.model.config.OptConfig opt) {
            int positions = c.numQueryTokens() + n + maxNewTokens;
            if (positions > opt.maxPositionEmbeddings()) {
                return new RequestError(RequestError.PROMPT_TOO_LONG, "the " + field + " (" + n + " tokens after " + c.numQueryTokens()
                        + " queries) plus max_new_tokens " + maxNewTokens + " exceeds the model's " + opt.maxPositionEmbeddings()
                        + " positions");
            }
        }
        return null;
    }

    /**
     * Refuses what must not reach a tokenizer: a text longer than {@code maxBytes} in UTF-8 (counted without
     * encoding it, stopping at the bound), or one with a lone UTF-16 surrogate.
     */
    static void check(String field, String text, long maxBytes, String limitName) {
        long bytes = 0;
        int n = text.length();
        for (int i = 0; i < n; i++) {
            char ch = text.charAt(i);
            if (ch < 0x80) {
                bytes += 1;
            } else if (ch < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(ch) && i + 1 < n && Character.isLowSurrogate(text.charAt(i + 1))) {
                bytes += 4;
                i++;
            } else if (Character.isSurrogate(ch)) {
                throw new RequestError(RequestError.INVALID_REQUEST, field + " holds a lone UTF-16 surrogate (\\u"
                        + Integer.toHexString(ch) + ") at character " + i + ": it is not text");
            } else {
                bytes += 3;
            }
            if (bytes > maxBytes) {
                throw new RequestError(RequestError.PROMPT_TOO_LONG, field + " is longer than " + maxBytes + " bytes in UTF-8, more than "
                        + limitName + " can hold");
            }
        }
    }

    /** The index of the first lone UTF-16 surrogate in {@code s} (half a pair, not text), or -1. */
    public static int loneSurrogate(String s) {
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i); // an unpaired surrogate comes back as itself
            if (Character.getType(cp) == Character.SURROGATE) {
                return i;
            }
            i += Character.charCount(cp);
        }
        return -1;
    }

    @Override
    public void close() {
        if (generation != null) {
            generation.tokenizer().close();
        }
        if (retrieval != null) {
            retrieval.tokenizer().close();
        }
    }
}
