package io.blip2stream.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.GenerationDefaults;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.generation.Generated;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.Generator;
import io.blip2stream.model.generation.TokenListener;
import io.blip2stream.model.image.BlipImageProcessor;
import io.blip2stream.model.llm.opt.OptForCausalLM;
import io.blip2stream.model.llm.opt.OptSession;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.qformer.Blip2QFormerModel;
import io.blip2stream.model.text.IncrementalDecoder;
import io.blip2stream.model.text.TextTokenizer;
import io.blip2stream.model.vision.Blip2VisionModel;
import io.blip2stream.model.weights.Weights;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * BLIP-2 for captioning and visual question answering (transformers' {@code Blip2ForConditionalGeneration}),
 * the one entry point the service and the command line use: preprocess an image, encode it (vision encoder,
 * Q-Former, language projection: the soft visual prompt), and generate text after it.
 *
 * <p>Dimensions: B batch, C 3 channels, H x W image, S image tokens, E vision hidden, Q queries, D Q-Former
 * hidden, W language model embedding size, T prompt length.
 */
public final class Blip2Model implements AutoCloseable {

    /** What the image side produces for a batch, row-major float32 arrays. */
    public record ImageFeatures(int batch,
                                float[] visionLastHiddenState,  // (B, S, E), null unless asked for
                                float[] qformerLastHiddenState, // (B, Q, D), null unless asked for
                                float[] languageProjection,     // (B, Q, L), L = the language model's hidden size
                                long visionNanos, long qformerNanos) {}

    /** One row to generate: the image's soft visual prompt [Q, W] and a text prompt (null: start from BOS). */
    public record GenerationRequest(float[] visualPrompt, String prompt) {}

    /** One row's outcome. {@code text} leaves out the prompt and special tokens. */
    public record GenerationResult(String text, int[] tokenIds, io.blip2stream.model.generation.FinishReason finishReason,
                                   long prefillNanos, long decodeNanos) {}

    /** Receives each token with the new piece of text it completes ("" while a character is incomplete). */
    @FunctionalInterface
    public interface TextListener {
        TextListener NONE = (row, index, tokenId, text) -> { };

        void onToken(int row, int index, int tokenId, String text);

        default boolean isCancelled(int row) {
            return false;
        }
    }

    private final Path dir;
    private final Blip2Config config;
    private final BlipImageProcessor processor;
    private final TextTokenizer tokenizer;
    private final GenerationDefaults generationDefaults;
    private final NDManager manager;
    private final Weights weights;
    private final Blip2VisionModel vision;
    private final NDArray queryTokens; // (1, Q, D)
    private final Blip2QFormerModel qformer;
    private final Linear languageProjection; // (D, W)
    private final OptForCausalLM languageModel;

    private Blip2Model(Path dir, Blip2Config config, BlipImageProcessor processor, TextTokenizer tokenizer,
                       GenerationDefaults generationDefaults, NDManager manager, Weights weights, Blip2VisionModel vision,
                       NDArray queryTokens, Blip2QFormerModel qformer, Linear languageProjection, OptForCausalLM languageModel) {
        this.dir = dir;
        this.config = config;
        this.processor = processor;
        this.tokenizer = tokenizer;
        this.generationDefaults = generationDefaults;
        this.manager = manager;
        this.weights = weights;
        this.vision = vision;
        this.queryTokens = queryTokens;
        this.qformer = qformer;
        this.languageProjection = languageProjection;
        this.languageModel = languageModel;
    }

    /**
     * Loads a checkpoint folder in the Hugging Face layout onto {@code engineManager}'s engine. The model keeps a
     * sub-manager of it and closes that on {@link #close()}.
     */
    public static Blip2Model load(Path dir, NDManager engineManager) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("model folder " + dir + " does not exist");
        }
        Blip2Config config = Blip2Config.load(dir);
        if (!(config.text() instanceof OptConfig opt)) {
            throw new IllegalArgumentException(dir + " has no supported language model (text_config.model_type opt)");
        }
        PreprocessorConfig pre = PreprocessorConfig.load(dir, config.vision().imageSize());
        Weights weights = Weights.open(dir);
        NDManager m = engineManager.newSubManager();
        try {
            TextTokenizer tokenizer = TextTokenizer.load(dir);
            Blip2VisionModel vision = Blip2VisionModel.load(weights, m, config.vision(), "vision_model");
            int q = config.numQueryTokens();
            int d = config.qformer().hiddenSize();
            NDArray queries = weights.load(m, "query_tokens", 1, q, d);
            Blip2QFormerModel qformer = Blip2QFormerModel.load(weights, m, config.qformer(), "qformer");
            Linear proj = Linear.load(weights, m, "language_projection", d, opt.hiddenSize(), true);
            OptForCausalLM lm = OptForCausalLM.load(weights, m, opt, "language_model");
            return new Blip2Model(dir, config, new BlipImageProcessor(pre), tokenizer, GenerationDefaults.load(dir),
                    m, weights, vision, queries, qformer, proj, lm);
        } catch (RuntimeException e) {
            m.close();
            weights.close();
            throw e;
        }
    }

    public Path dir() {
        return dir;
    }

    public Blip2Config config() {
        return config;
    }

    public BlipImageProcessor processor() {
        return processor;
    }

    public TextTokenizer tokenizer() {
        return tokenizer;
    }

    public int numQueryTokens() {
        return config.numQueryTokens();
    }

    /** W, the width of one soft-prompt vector (the language model's input embeddings). */
    public int languageWidth() {
        return languageModel.wordEmbedDim();
    }

    /** L, the width of the language projection's output (the language model's hidden size). */
    public int projectionWidth() {
        return languageModel.config().hiddenSize();
    }

    /**
     * The soft visual prompt of image {@code i} of {@code features}, [Q, W]: its projected queries, which stand
     * where the image tokens are. When W equals L (every released BLIP-2 checkpoint) that is the projection
     * itself. An OPT with {@code word_embed_proj_dim != hidden_size} (opt-350m's layout) has narrower input
     * embeddings than the projection; transformers' {@code masked_scatter} then fills the image positions with
     * the first Q*W values of the projection, and so does this, image by image.
     */
    public float[] visualPrompt(ImageFeatures features, int i) {
        int q = config.numQueryTokens();
        int per = q * projectionWidth();
        return java.util.Arrays.copyOfRange(features.languageProjection(), i * per, i * per + q * languageWidth());
    }

    public int eosTokenId() {
        Integer e = generationDefaults.eosTokenId();
        return e != null ? e : config.text().eosTokenId();
    }

    /** The VQA prompt of the model family: "Question: {q} Answer:" for OPT. */
    public String vqaPrompt(String question) {
        return "Question: " + question.strip() + " Answer:";
    }

    /** Encoded image bytes to pixel_values [C, H, W]. */
    public float[] preprocess(byte[] image) {
        return processor.preprocess(image);
    }

    /**
     * Vision encoder, Q-Former and language projection over a batch.
     *
     * @param pixelValues   per image [C, H, W]
     * @param intermediates also return the vision and Q-Former outputs
     */
    public ImageFeatures encodeImages(List<float[]> pixelValues, boolean intermediates) {
        int b = pixelValues.size();
        int h = processor.height();
        int w = processor.width();
        float[] px = new float[b * 3 * h * w];
        for (int i = 0; i < b; i++) {
            float[] p = pixelValues.get(i);
            if (p.length != 3 * h * w) {
                throw new IllegalArgumentException("pixel_values must be 3x" + h + "x" + w);
            }
            System.arraycopy(p, 0, px, i * p.length, p.length);
        }
        try (NDManager scope = manager.newSubManager()) {
            long t0 = System.nanoTime();
            NDArray pixels = Ops.create(scope, px, b, 3, h, w);                         // (B, C, H, W)
            NDArray image = vision.forward(pixels);                                     // (B, S, E)
            float[] visionOut = intermediates ? image.toFloatArray() : null;
            if (!intermediates) {
                image.toFloatArray(); // wait for the engine, for honest timings
            }
            long t1 = System.nanoTime();
            int q = config.numQueryTokens();
            int d = config.qformer().hiddenSize();
            NDArray queries = scope.zeros(new ai.djl.ndarray.types.Shape(b, q, d)).add(queryTokens); // (B, Q, D)
            NDArray queryOut = qformer.forward(queries, image);                         // (B, Q, D)
            NDArray projected = languageProjection.forward(queryOut);                   // (B, Q, W)
            float[] qOut = intermediates ? queryOut.toFloatArray() : null;
            float[] proj = projected.toFloatArray();
            long t2 = System.nanoTime();
            return new ImageFeatures(b, visionOut, qOut, proj, t1 - t0, t2 - t1);
        }
    }

    /** The text ids of a prompt: the tokenizer's ids with its special tokens; BOS alone for none. */
    public int[] promptIds(String prompt) {
        if (prompt == null || prompt.isEmpty()) {
            return new int[] {config.text().bosTokenId()};
        }
        return tokenizer.encode(prompt);
    }

    /**
     * Generates after each request's visual prompt and text prompt, batched: rows are left-padded to one length,
     * and every row gives the ids it would give alone.
     */
    public List<GenerationResult> generate(List<GenerationRequest> requests, GenerationParams params, TextListener listener) {
        int b = requests.size();
        int[][] textIds = new int[b][];
        int[][] processorIds = new int[b][];
        IncrementalDecoder[] decoders = new IncrementalDecoder[b];
        for (int i = 0; i < b; i++) {
            textIds[i] = promptIds(requests.get(i).prompt());
            processorIds[i] = processorView(textIds[i]);
            decoders[i] = new IncrementalDecoder(tokenizer);
        }
        long t0 = System.nanoTime();
        List<Generated> generated;
        long t1;
        try (DecoderSession session = startSession(requests, textIds, params.maxNewTokens())) {
            t1 = System.nanoTime();
            generated = Generator.generate(session, processorIds, params, eosTokenId(), new TokenListener() {
                @Override
                public void onToken(int row, int index, int tokenId) {
                    listener.onToken(row, index, tokenId, decoders[row].add(tokenId));
                }

                @Override
                public boolean isCancelled(int row) {
                    return listener.isCancelled(row);
                }
            });
        }
        long t2 = System.nanoTime();
        List<GenerationResult> out = new ArrayList<>(b);
        for (int i = 0; i < b; i++) {
            decoders[i].flush();
            Generated g = generated.get(i);
            out.add(new GenerationResult(decoders[i].text(), g.tokenIds(), g.finishReason(), t1 - t0, t2 - t1));
        }
        return out;
    }

    /**
     * Runs the prompts of a batch through the language model (the prefill) and returns the session that decodes
     * after them; the caller closes it.
     *
     * @param maxNewTokens how many positions the session may add (checked against the model's positions)
     */
    public DecoderSession startSession(List<GenerationRequest> requests, int maxNewTokens) {
        int[][] textIds = new int[requests.size()][];
        for (int i = 0; i < textIds.length; i++) {
            textIds[i] = promptIds(requests.get(i).prompt());
        }
        return startSession(requests, textIds, maxNewTokens);
    }

    private DecoderSession startSession(List<GenerationRequest> requests, int[][] textIds, int maxNewTokens) {
        int b = requests.size();
        int q = config.numQueryTokens();
        int t = 0;
        for (int i = 0; i < b; i++) {
            t = Math.max(t, q + textIds[i].length);
        }
        int maxPositions = languageModel.config().maxPositionEmbeddings();
        if (t + maxNewTokens > maxPositions) {
            throw new IllegalArgumentException("prompt of " + t + " positions plus max_new_tokens " + maxNewTokens
                    + " exceeds the language model's " + maxPositions + " positions");
        }
        int[][] mask = new int[b][t];
        float[] embeds = inputsEmbeds(requests, textIds, t, mask);
        return languageModel.start(embeds, mask);
    }

    /** The prompt's logits at every position, [T][V] (for parity checks against transformers). */
    public float[][] promptLogits(GenerationRequest request) {
        return promptLogits(request, new int[0]);
    }

    /**
     * Logits at every position of the prompt followed by {@code continuation}, computed in one pass without a
     * KV cache, [T + n][V]: what cached decoding must reproduce.
     */
    public float[][] promptLogits(GenerationRequest request, int[] continuation) {
        int[] prompt = promptIds(request.prompt());
        int[][] textIds = {java.util.Arrays.copyOf(prompt, prompt.length + continuation.length)};
        System.arraycopy(continuation, 0, textIds[0], prompt.length, continuation.length);
        int t = config.numQueryTokens() + textIds[0].length;
        int[][] mask = new int[1][t];
        float[] embeds = inputsEmbeds(List.of(request), textIds, t, mask);
        return OptSession.fullLogits(languageModel, embeds, mask)[0];
    }

    /** The ids transformers' logits processors see: the image tokens (when the checkpoint has one) and the text. */
    private int[] processorView(int[] textIds) {
        if (config.imageTokenIndex() == null) {
            return textIds.clone();
        }
        int q = config.numQueryTokens();
        int[] ids = new int[q + textIds.length];
        java.util.Arrays.fill(ids, 0, q, config.imageTokenIndex());
        System.arraycopy(textIds, 0, ids, q, textIds.length);
        return ids;
    }

    /** Rows of [padding, Q projected queries, text embeddings], [B, T, W], and the attention mask. */
    private float[] inputsEmbeds(List<GenerationRequest> requests, int[][] textIds, int t, int[][] mask) {
        int b = requests.size();
        int q = config.numQueryTokens();
        int w = languageModel.wordEmbedDim();
        float[] out = new float[b * t * w];
        int pad = config.text().padTokenId();
        for (int i = 0; i < b; i++) {
            float[] visual = requests.get(i).visualPrompt();
            if (visual.length != q * w) {
                throw new IllegalArgumentException("visual prompt must be " + q + "x" + w + " floats, got " + visual.length);
            }
            int padding = t - q - textIds[i].length;
            int row = i * t * w;
            for (int j = 0; j < padding; j++) {
                languageModel.embedToken(pad, out, row + j * w);
            }
            System.arraycopy(visual, 0, out, row + padding * w, q * w);
            for (int j = 0; j < textIds[i].length; j++) {
                languageModel.embedToken(textIds[i][j], out, row + (padding + q + j) * w);
            }
            for (int j = padding; j < t; j++) {
                mask[i][j] = 1;
            }
        }
        return out;
    }

    @Override
    public void close() {
        tokenizer.close();
        manager.close();
        weights.close();
    }
}
