package io.blip2stream.model;

import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.GenerationDefaults;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.model.generation.Generator;
import io.blip2stream.model.generation.RowListener;
import io.blip2stream.model.llm.LanguageModel;
import io.blip2stream.model.text.PromptEncoder;
import io.blip2stream.model.text.TextTokenizer;

import java.util.Arrays;
import java.util.List;

/**
 * The text side of {@code Blip2ForConditionalGeneration}: a frozen language model (OPT or FlanT5) that generates
 * after the soft visual prompt {@link Blip2Model} makes of an image. It builds each row's inputs ([padding, Q
 * projected queries, text embeddings] and the attention mask), runs the prompts through the language model (the
 * prefill) and decodes with {@link Generator}, or lets rows join a {@link ContinuousBatch}.
 *
 * <p>Dimensions: B batch, Q queries, L language model hidden, W language model input width, T prompt length.
 */
public final class Blip2Generation {
    private final Blip2Config config;
    private final TextTokenizer tokenizer;
    private final LanguageModel lm;
    private final PromptEncoder prompts;
    private final GenerationDefaults defaults;

    Blip2Generation(Blip2Config config, TextTokenizer tokenizer, LanguageModel lm, GenerationDefaults defaults) {
        this.config = config;
        this.tokenizer = tokenizer;
        this.lm = lm;
        this.prompts = new PromptEncoder(tokenizer, lm.config());
        this.defaults = defaults;
    }

    /** How the language model runs a decode step ({@link LanguageModel#decodePath}). */
    public String decodePath() {
        return lm.decodePath();
    }

    /** W, the width of one soft-prompt vector (the language model's input embeddings). */
    public int languageWidth() {
        return lm.inputWidth();
    }

    /** L, the width of the language projection's output (the language model's hidden size). */
    public int projectionWidth() {
        return lm.hiddenSize();
    }

    public int eosTokenId() {
        Integer e = defaults.eosTokenId();
        return e != null ? e : lm.config().eosTokenId();
    }

    /** The VQA prompt of the model family: "Question: {q} Answer:" for OPT, "Question: {q} Short answer:" for T5. */
    public String vqaPrompt(String question) {
        return prompts.vqaPrompt(question);
    }

    /** The prompt rules of this checkpoint's language model (its VQA template, BOS). */
    public PromptEncoder prompts() {
        return prompts;
    }

    /**
     * The text ids of a prompt: the tokenizer's ids with its special tokens. No prompt: OPT starts from BOS
     * alone; T5 (which has no BOS) encodes the empty text, as BLIP-2's processor does.
     */
    public int[] promptIds(String prompt) {
        return prompts().promptIds(prompt);
    }

    /** A request's text ids: those it carries (tokenized before it reached the model), else its prompt's. */
    private int[] textIds(GenerationRequest r) {
        return r.promptIds() != null ? r.promptIds() : promptIds(r.prompt());
    }

    /**
     * Generates after each request's visual prompt and text prompt, batched: rows are left-padded to one length,
     * and every row gives the ids it would give alone.
     */
    public List<GenerationResult> generate(List<GenerationRequest> requests, GenerationParams params) {
        return generate(requests, params, java.util.Collections.nCopies(requests.size(), RowListener.NONE));
    }

    /** {@link #generate(List, GenerationParams)}, each row's tokens and end told to its listener as they come. */
    public List<GenerationResult> generate(List<GenerationRequest> requests, GenerationParams params, List<RowListener> listeners) {
        int b = requests.size();
        int[][] textIds = new int[b][];
        int[][] processorIds = new int[b][];
        for (int i = 0; i < b; i++) {
            textIds[i] = textIds(requests.get(i));
            processorIds[i] = processorView(textIds[i]);
        }
        long t0 = System.nanoTime();
        DecoderSession session = startSession(requests, textIds, maxNewTokens(b, params.maxNewTokens()));
        return Generator.generate(session, processorIds, params, eosTokenId(), tokenizer, listeners, System.nanoTime() - t0);
    }

    /**
     * Greedy decoding or sampling of each request with its own parameters, batched ({@link Generator#generateEach}):
     * rows that sample with one seed sample alike, so several samples of one prompt each need their own seed.
     */
    public List<GenerationResult> generateEach(List<GenerationRequest> requests, List<GenerationParams> params) {
        Prefilled p = prefill(requests, params);
        return Generator.generateEach(p.session(), p.processorIds(), params, eosTokenId(), tokenizer,
                java.util.Collections.nCopies(requests.size(), RowListener.NONE), p.nanos());
    }

    /** A continuous batch of this model's rows ({@link #admit}), their text decoded as their tokens come. */
    public ContinuousBatch newBatch() {
        return new ContinuousBatch(eosTokenId(), tokenizer);
    }

    /**
     * Rows join a continuous batch of greedy or sampled generation: their prompts run through the language model
     * together (the prefill), each row picks its first token at once, and from the next step on they decode with
     * the rows already there. Each row's tokens and result go to its listener (for {@link #newBatch}'s batches, with their text).
     */
    public void admit(ContinuousBatch batch, List<GenerationRequest> requests, List<GenerationParams> params,
                      List<RowListener> listeners) {
        Prefilled p = prefill(requests, params);
        batch.add(p.session(), p.processorIds(), params, listeners, p.nanos());
    }

    /** A session whose prompts have run, each row with room for its own parameters' new tokens, and how long it took. */
    private record Prefilled(DecoderSession session, int[][] processorIds, long nanos) {}

    private Prefilled prefill(List<GenerationRequest> requests, List<GenerationParams> params) {
        int b = requests.size();
        if (params.size() != b) {
            throw new IllegalArgumentException(params.size() + " parameters for " + b + " requests");
        }
        int[][] textIds = new int[b][];
        int[][] processorIds = new int[b][];
        int[] maxNew = new int[b];
        for (int i = 0; i < b; i++) {
            textIds[i] = textIds(requests.get(i));
            processorIds[i] = processorView(textIds[i]);
            maxNew[i] = params.get(i).maxNewTokens();
        }
        long t0 = System.nanoTime();
        DecoderSession session = startSession(requests, textIds, maxNew);
        return new Prefilled(session, processorIds, System.nanoTime() - t0);
    }

    /**
     * Runs the prompts of a batch through the language model (the prefill; for T5 the encoder and the decoder
     * start token) and returns the session that decodes after them; the caller closes it.
     *
     * @param maxNewTokens how many positions the session may add (checked against the model's positions)
     */
    public DecoderSession startSession(List<GenerationRequest> requests, int maxNewTokens) {
        int[][] textIds = new int[requests.size()][];
        for (int i = 0; i < textIds.length; i++) {
            textIds[i] = textIds(requests.get(i));
        }
        return startSession(requests, textIds, maxNewTokens(requests.size(), maxNewTokens));
    }

    private static int[] maxNewTokens(int rows, int maxNewTokens) {
        int[] out = new int[rows];
        Arrays.fill(out, maxNewTokens);
        return out;
    }

    /** @param maxNewTokens per row, how many positions it may add (checked against the model's positions) */
    private DecoderSession startSession(List<GenerationRequest> requests, int[][] textIds, int[] maxNewTokens) {
        int b = requests.size();
        int q = config.numQueryTokens();
        int t = 0;
        for (int i = 0; i < b; i++) {
            t = Math.max(t, q + textIds[i].length);
            // positions are counted per row (padding takes none), so each row is checked on its own
            int generatedInPrompt = lm.config().isEncoderDecoder() ? 0 : maxNewTokens[i];
            if ((long) q + textIds[i].length + generatedInPrompt > lm.maxPositions()) {
                throw new IllegalArgumentException("prompt of " + (q + textIds[i].length) + " positions plus max_new_tokens "
                        + maxNewTokens[i] + " exceeds the language model's " + lm.maxPositions() + " positions");
            }
        }
        int[][] mask = new int[b][t];
        float[] embeds = inputsEmbeds(requests, textIds, t, mask);
        return lm.start(embeds, mask);
    }

    /** The logits transformers' fixtures hold: OPT, every prompt position; T5, the first decoder step. [T][V] */
    public float[][] promptLogits(GenerationRequest request) {
        return promptLogits(request, new int[0]);
    }

    /**
     * Logits computed in one pass without a KV cache, what cached decoding must reproduce: OPT, at every position
     * of the prompt followed by {@code continuation}; T5, at every decoder position of the decoder start token
     * followed by {@code continuation}.
     */
    public float[][] promptLogits(GenerationRequest request, int[] continuation) {
        int[] prompt = promptIds(request.prompt());
        boolean encDec = lm.config().isEncoderDecoder();
        int[] text = prompt;
        if (!encDec) {
            text = Arrays.copyOf(prompt, prompt.length + continuation.length);
            System.arraycopy(continuation, 0, text, prompt.length, continuation.length);
        }
        int t = config.numQueryTokens() + text.length;
        int[][] mask = new int[1][t];
        float[] embeds = inputsEmbeds(List.of(request), new int[][] {text}, t, mask);
        return lm.fullLogits(embeds, mask[0], encDec ? continuation : new int[0]);
    }

    /**
     * The ids transformers' logits processors see as the prompt: for T5 the decoder start token; for OPT the
     * image tokens (when the checkpoint has one) and the text.
     */
    int[] processorView(int[] textIds) {
        int[] decoderPrompt = lm.decoderPrompt();
        if (decoderPrompt != null) {
            return decoderPrompt;
        }
        if (config.imageTokenIndex() == null) {
            return textIds.clone();
        }
        int q = config.numQueryTokens();
        int[] ids = new int[q + textIds.length];
        Arrays.fill(ids, 0, q, config.imageTokenIndex());
        System.arraycopy(textIds, 0, ids, q, textIds.length);
        return ids;
    }

    /** Rows of [padding, Q projected queries, text embeddings], [B, T, W], and the attention mask. */
    private float[] inputsEmbeds(List<GenerationRequest> requests, int[][] textIds, int t, int[][] mask) {
        int b = requests.size();
        int q = config.numQueryTokens();
        int w = lm.inputWidth();
        float[] out = new float[b * t * w];
        int pad = lm.config().padTokenId();
        for (int i = 0; i < b; i++) {
            float[] visual = requests.get(i).visualPrompt();
            if (visual.length != q * w) {
                throw new IllegalArgumentException("visual prompt must be " + q + "x" + w + " floats, got " + visual.length);
            }
            int padding = t - q - textIds[i].length;
            int row = i * t * w;
            for (int j = 0; j < padding; j++) {
                lm.embedToken(pad, out, row + j * w);
            }
            System.arraycopy(visual, 0, out, row + padding * w, q * w);
            for (int j = 0; j < textIds[i].length; j++) {
                lm.embedToken(textIds[i][j], out, row + (padding + q + j) * w);
            }
            for (int j = padding; j < t; j++) {
                mask[i][j] = 1;
            }
        }
        return out;
    }
}
