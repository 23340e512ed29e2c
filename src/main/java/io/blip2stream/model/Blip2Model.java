package io.blip2stream.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.GenerationDefaults;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.config.T5Config;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.generation.FinishReason;
import io.blip2stream.model.generation.Generated;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.Generator;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.TokenListener;
import io.blip2stream.model.image.BlipImageProcessor;
import io.blip2stream.model.llm.LanguageModel;
import io.blip2stream.model.llm.opt.OptForCausalLM;
import io.blip2stream.model.llm.t5.T5ForConditionalGeneration;
import io.blip2stream.model.nn.AttentionMask;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.OneDnnWeight;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.qformer.Blip2QFormerModel;
import io.blip2stream.model.qformer.Blip2TextEmbeddings;
import io.blip2stream.model.text.IncrementalDecoder;
import io.blip2stream.model.text.PromptEncoder;
import io.blip2stream.model.text.TextTokenizer;
import io.blip2stream.model.vision.Blip2VisionModel;
import io.blip2stream.model.nn.WeightStreaming;
import io.blip2stream.model.weights.Precision;
import io.blip2stream.model.weights.Weights;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * BLIP-2, the one entry point the service and the command line use, for both kinds of checkpoint:
 * <ul>
 *   <li>{@code Blip2ForConditionalGeneration} (OPT or FlanT5): preprocess an image, encode it (vision encoder,
 *       Q-Former, language projection: the soft visual prompt) and generate text after it;</li>
 *   <li>{@code Blip2ForImageTextRetrieval}: match texts to an image (ITM and ITC) and embed images and texts for
 *       vector search.</li>
 * </ul>
 *
 * <p>Dimensions: B batch, C 3 channels, H x W image, S image tokens, E vision hidden, Q queries, D Q-Former
 * hidden, L language model hidden, W language model input width, T prompt length, P retrieval embedding size.
 */
public final class Blip2Model implements AutoCloseable {

    /** What the image side produces for a batch, row-major float32 arrays. */
    public record ImageFeatures(int batch,
                                float[] visionLastHiddenState,  // (B, S, E), null unless asked for
                                float[] qformerLastHiddenState, // (B, Q, D), null unless asked for
                                float[] languageProjection,     // (B, Q, L), null for retrieval checkpoints
                                float[] imageEmbeds,            // (B, Q, P) normalised, retrieval checkpoints only
                                long visionNanos, long qformerNanos) {}

    /** One row to generate: the image's soft visual prompt [Q, W] and a text prompt (null: none). */
    public record GenerationRequest(float[] visualPrompt, String prompt, int[] promptIds) {
        /** A request whose prompt is tokenized when it runs (the command line, tests). */
        public GenerationRequest(float[] visualPrompt, String prompt) {
            this(visualPrompt, prompt, null);
        }
    }

    /** One row's outcome. {@code text} leaves out the prompt and special tokens. */
    public record GenerationResult(String text, int[] tokenIds, FinishReason finishReason, long prefillNanos, long decodeNanos) {}

    /** An image-text pair scored by the retrieval heads. */
    public record MatchResult(String text, float[] itmLogits, double itmProbability, double itcScore) {}

    /** Receives each token with the new piece of text it completes ("" while a character is incomplete). */
    @FunctionalInterface
    public interface TextListener {
        TextListener NONE = (row, index, tokenId, text) -> { };

        void onToken(int row, int index, int tokenId, String text);

        default boolean isCancelled(int row) {
            return false;
        }
    }

    /** What one row of a continuous batch reports: its tokens with their text, and its result. */
    public interface RowHandler {
        void onToken(int index, int tokenId, String text);

        default boolean isCancelled() {
            return false;
        }

        void onFinish(GenerationResult result);

        /** The row ended without a result: the model failed while it decoded. */
        default void onError(RuntimeException cause) {}
    }

    /** The parts only retrieval checkpoints have. */
    private record RetrievalHeads(Blip2TextEmbeddings embeddings, Linear visionProjection, Linear textProjection, Linear itmHead) {}

    private final Path dir;
    private final Blip2Config config;
    private final BlipImageProcessor processor;
    private final TextTokenizer tokenizer;
    private final PromptEncoder prompts; // null for retrieval
    private final GenerationDefaults generationDefaults;
    private final NDManager manager;
    private final Weights weights;
    private final Precision precision;
    private final Blip2VisionModel vision;
    private final NDArray queryTokens; // (1, Q, D)
    private final Blip2QFormerModel qformer;
    private final Linear languageProjection; // (D, L), null for retrieval
    private final LanguageModel languageModel; // null for retrieval
    private final RetrievalHeads retrieval;    // null for generation

    private Blip2Model(Path dir, Blip2Config config, BlipImageProcessor processor, TextTokenizer tokenizer,
                       GenerationDefaults generationDefaults, NDManager manager, Weights weights, Precision precision,
                       Blip2VisionModel vision,
                       NDArray queryTokens, Blip2QFormerModel qformer, Linear languageProjection, LanguageModel languageModel,
                       RetrievalHeads retrieval) {
        this.dir = dir;
        this.config = config;
        this.processor = processor;
        this.tokenizer = tokenizer;
        this.prompts = languageModel == null ? null : new PromptEncoder(tokenizer, languageModel.config());
        this.generationDefaults = generationDefaults;
        this.manager = manager;
        this.weights = weights;
        this.precision = precision;
        this.vision = vision;
        this.queryTokens = queryTokens;
        this.qformer = qformer;
        this.languageProjection = languageProjection;
        this.languageModel = languageModel;
        this.retrieval = retrieval;
    }

    /**
     * Loads a checkpoint folder in the Hugging Face layout onto {@code engineManager}'s engine. The model keeps a
     * sub-manager of it and closes that on {@link #close()}.
     */
    public static Blip2Model load(Path dir, NDManager engineManager) throws IOException {
        return load(dir, engineManager, Precision.FLOAT32.id());
    }

    /**
     * Loads a checkpoint with its weights kept in the precision {@code dtype} names (float32, bfloat16, int8, or auto:
     * see {@link Precision}).
     */
    public static Blip2Model load(Path dir, NDManager engineManager, String dtype) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("model folder " + dir + " does not exist");
        }
        if (!Precision.isSetting(dtype)) {
            throw new IllegalArgumentException("dtype '" + dtype + "' is not one of float32, bfloat16, int8, auto");
        }
        Blip2Config config = Blip2Config.load(dir);
        PreprocessorConfig pre = PreprocessorConfig.load(dir, config.vision().imageSize());
        Weights stored = Weights.open(dir);
        boolean tensorflow = "TensorFlow".equals(engineManager.getEngine().getEngineName());
        Precision precision = Precision.resolve(dtype, stored.storedDtype(),
                tensorflow && (WeightStreaming.vectorized() || OneDnnWeight.available()));
        Weights weights = stored.withPrecision(precision);
        NDManager m = engineManager.newSubManager();
        TextTokenizer tokenizer = null;
        try {
            if (precision != Precision.FLOAT32 && !tensorflow) {
                throw new IllegalArgumentException("dtype " + precision + " runs on the TensorFlow engine only (DJL's PyTorch "
                        + "engine has no bfloat16 arrays): use --engine tensorflow, or --dtype float32 on PyTorch");
            }
            tokenizer = TextTokenizer.load(dir);
            Blip2VisionModel vision = Blip2VisionModel.load(weights.withPrecision(precision.forVisionEncoder()).forManyRows(), m,
                    config.vision(), "vision_model");
            int q = config.numQueryTokens();
            int d = config.qformer().hiddenSize();
            NDArray queries = weights.load(m, "query_tokens", 1, q, d);
            boolean retrieval = config.isRetrieval();
            Blip2QFormerModel qformer = Blip2QFormerModel.load(weights, m, config.qformer(), "qformer", retrieval);
            Linear proj = null;
            LanguageModel lm = null;
            RetrievalHeads heads = null;
            if (retrieval) {
                int p = config.imageTextHiddenSize();
                heads = new RetrievalHeads(Blip2TextEmbeddings.load(weights, config.qformer(), "embeddings"),
                        Linear.load(weights, m, "vision_projection", d, p, true),
                        Linear.load(weights, m, "text_projection", d, p, true),
                        Linear.load(weights, m, "itm_head", d, 2, true));
            } else if (config.text() instanceof OptConfig opt) {
                lm = OptForCausalLM.load(weights, m, opt, "language_model");
            } else if (config.text() instanceof T5Config t5) {
                lm = T5ForConditionalGeneration.load(weights, m, t5, "language_model");
            } else {
                throw new IllegalArgumentException(dir + " has no supported language model (text_config.model_type opt or t5)");
            }
            if (lm != null) {
                proj = Linear.load(weights, m, "language_projection", d, lm.hiddenSize(), true);
            }
            return new Blip2Model(dir, config, new BlipImageProcessor(pre), tokenizer, GenerationDefaults.load(dir),
                    m, stored, precision, vision, queries, qformer, proj, lm, heads);
        } catch (RuntimeException e) {
            if (tokenizer != null) {
                tokenizer.close();
            }
            m.close();
            stored.close();
            throw e;
        }
    }

    public Path dir() {
        return dir;
    }

    /**
     * An id that changes when the model's outputs can: its name, a hash of its config.json and, unless float32, the
     * precision its weights are kept in (a bfloat16 replica's visual prompts differ from a float32 one's). Caches key on it.
     */
    public String id() {
        String suffix = precision == Precision.FLOAT32 ? "" : "/" + precision.id();
        try {
            byte[] cfg = java.nio.file.Files.readAllBytes(dir.resolve("config.json"));
            return name() + "@" + io.blip2stream.common.Sha256.prefix(cfg, 6) + suffix;
        } catch (Exception e) {
            return name() + suffix;
        }
    }

    /** The precision the model's weights are kept in ({@code auto} resolved). */
    public Precision precision() {
        return precision;
    }

    /**
     * The model's name as results report it: its folder's name, or the folder above when the folder is just
     * called "model" (as in the test fixtures).
     */
    public String name() {
        Path abs = dir.toAbsolutePath().normalize();
        Path last = abs.getFileName();
        if (last != null && last.toString().equals("model") && abs.getParent() != null && abs.getParent().getFileName() != null) {
            return abs.getParent().getFileName().toString();
        }
        return last == null ? abs.toString() : last.toString();
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

    /** Whether this checkpoint generates text (OPT or FlanT5). */
    /**
     * Runs the model once on a blank image (its vision encoder and Q-Former, and two greedy tokens where it
     * generates) so that the first request does not pay for the first calls: on opt-2.7b in bfloat16 a process's
     * first caption decoded at 250 ms a token and the next at 139, its first image took 1.3 s and the next 0.9 s
     * (kernels made for each new shape, caches and clocks warming). Touches no cache a request reads.
     *
     * @return how long it took, in ms
     */
    public long warmUp() {
        long t0 = System.nanoTime();
        float[] blank = new float[3 * processor().height() * processor().width()];
        ImageFeatures f = encodeImages(List.of(blank), false);
        if (canGenerate()) {
            generate(List.of(new GenerationRequest(visualPrompt(f, 0), null)),
                    io.blip2stream.model.generation.GenerationParams.greedy(2), TextListener.NONE);
        }
        return (System.nanoTime() - t0) / 1_000_000;
    }

    public boolean canGenerate() {
        return languageModel != null;
    }

    /** Whether this checkpoint matches and embeds (a retrieval checkpoint). */
    public boolean canMatch() {
        return retrieval != null;
    }

    /** W, the width of one soft-prompt vector (the language model's input embeddings). */
    /** How the language model runs a decode step ({@link LanguageModel#decodePath}). */
    public String decodePath() {
        return lm().decodePath();
    }

    public int languageWidth() {
        return lm().inputWidth();
    }

    /** L, the width of the language projection's output (the language model's hidden size). */
    public int projectionWidth() {
        return lm().hiddenSize();
    }

    /** P, the size of retrieval embeddings. */
    public int embeddingSize() {
        requireRetrieval();
        return config.imageTextHiddenSize();
    }

    public int eosTokenId() {
        Integer e = generationDefaults.eosTokenId();
        return e != null ? e : lm().config().eosTokenId();
    }

    /** The VQA prompt of the model family: "Question: {q} Answer:" for OPT, "Question: {q} Short answer:" for T5. */
    public String vqaPrompt(String question) {
        return prompts().vqaPrompt(question);
    }

    /** The prompt rules of this checkpoint's language model (its VQA template, BOS). */
    public PromptEncoder prompts() {
        lm();
        return prompts;
    }

    private LanguageModel lm() {
        if (languageModel == null) {
            throw new IllegalStateException(dir + " is a retrieval checkpoint: it matches and embeds but does not generate text");
        }
        return languageModel;
    }

    private void requireRetrieval() {
        if (retrieval == null) {
            throw new IllegalStateException(dir + " is not a retrieval checkpoint (Blip2ForImageTextRetrieval): it cannot match or embed texts");
        }
    }

    /** Encoded image bytes to pixel_values [C, H, W]. */
    public float[] preprocess(byte[] image) {
        return processor.preprocess(image);
    }

    /**
     * Vision encoder, Q-Former and the head of the checkpoint (language projection, or retrieval projection)
     * over a batch.
     *
     * @param pixelValues   per image [C, H, W]
     * @param intermediates also return the vision and Q-Former outputs
     */
    public ImageFeatures encodeImages(List<float[]> pixelValues, boolean intermediates) {
        int b = pixelValues.size();
        try (NDManager scope = manager.newSubManager()) {
            long t0 = System.nanoTime();
            NDArray image = vision(scope, pixelValues);                                   // (B, S, E)
            float[] visionOut = image.toFloatArray(); // also waits for the engine, for honest timings
            long t1 = System.nanoTime();
            NDArray queryOut = qformer.forward(queries(scope, b), image);                   // (B, Q, D)
            float[] qOut = intermediates ? queryOut.toFloatArray() : null;
            float[] proj = null;
            float[] embeds = null;
            if (languageProjection != null) {
                proj = languageProjection.forward(queryOut).toFloatArray();                // (B, Q, L)
            } else {
                embeds = normalize(retrieval.visionProjection().forward(queryOut)).toFloatArray(); // (B, Q, P)
            }
            long t2 = System.nanoTime();
            return new ImageFeatures(b, intermediates ? visionOut : null, qOut, proj, embeds, t1 - t0, t2 - t1);
        }
    }

    private NDArray vision(NDManager scope, List<float[]> pixelValues) {
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
        return vision.forward(Ops.create(scope, px, b, 3, h, w)); // (B, S, E)
    }

    private NDArray queries(NDManager scope, int b) {
        return scope.zeros(new Shape(b, config.numQueryTokens(), config.qformer().hiddenSize())).add(queryTokens); // (B, Q, D)
    }

    /** F.normalize over the last axis: x / max(|x|, 1e-12). */
    private static NDArray normalize(NDArray x) {
        int last = x.getShape().dimension() - 1;
        return x.div(x.mul(x).sum(new int[] {last}, true).sqrt().maximum(1e-12f));
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
        return Arrays.copyOfRange(features.languageProjection(), i * per, i * per + q * languageWidth());
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

    // ---- generation

    /**
     * Generates after each request's visual prompt and text prompt, batched: rows are left-padded to one length,
     * and every row gives the ids it would give alone.
     */
    public List<GenerationResult> generate(List<GenerationRequest> requests, GenerationParams params, TextListener listener) {
        int b = requests.size();
        GenerationResult[] out = new GenerationResult[b];
        if (params.numBeams() > 1) {
            int[][] textIds = new int[b][];
            int[][] processorIds = new int[b][];
            IncrementalDecoder[] decoders = new IncrementalDecoder[b];
            for (int i = 0; i < b; i++) {
                textIds[i] = textIds(requests.get(i));
                processorIds[i] = processorView(textIds[i]);
                decoders[i] = new IncrementalDecoder(tokenizer);
            }
            long t0 = System.nanoTime();
            DecoderSession session = startSession(requests, textIds, maxNewTokens(b, params));
            long t1 = System.nanoTime();
            List<Generated> generated = Generator.generate(session, processorIds, params, eosTokenId(), new TokenListener() {
                @Override
                public void onToken(int row, int index, int tokenId) {
                    listener.onToken(row, index, tokenId, decoders[row].add(tokenId));
                }

                @Override
                public boolean isCancelled(int row) {
                    return listener.isCancelled(row);
                }
            });
            long t2 = System.nanoTime();
            for (int i = 0; i < b; i++) {
                decoders[i].flush();
                Generated g = generated.get(i);
                out[i] = new GenerationResult(decoders[i].text(), g.tokenIds(), g.finishReason(), t1 - t0, t2 - t1);
            }
            return Arrays.asList(out);
        }
        List<RowHandler> handlers = new ArrayList<>(b);
        RuntimeException[] failed = new RuntimeException[1];
        for (int i = 0; i < b; i++) {
            int row = i;
            handlers.add(new RowHandler() {
                @Override
                public void onError(RuntimeException cause) {
                    if (failed[0] == null) {
                        failed[0] = cause;
                    }
                }

                @Override
                public void onToken(int index, int tokenId, String text) {
                    listener.onToken(row, index, tokenId, text);
                }

                @Override
                public boolean isCancelled() {
                    return listener.isCancelled(row);
                }

                @Override
                public void onFinish(GenerationResult result) {
                    out[row] = result;
                }
            });
        }
        try (ContinuousBatch batch = new ContinuousBatch(eosTokenId())) {
            admit(batch, requests, java.util.Collections.nCopies(b, params), handlers);
            while (!batch.isEmpty()) {
                batch.step();
            }
        }
        if (failed[0] != null) {
            throw failed[0]; // a row failed alone (the others finished): callers that need each row use admit
        }
        return Arrays.asList(out);
    }

    /**
     * Rows join a continuous batch of greedy or sampled generation: their prompts run through the language model
     * together (the prefill), each row picks its first token at once, and from the next step on they decode with
     * the rows already there. Each row's result goes to its handler when it finishes.
     */
    public void admit(ContinuousBatch batch, List<GenerationRequest> requests, List<GenerationParams> params,
                      List<RowHandler> handlers) {
        int b = requests.size();
        int[][] textIds = new int[b][];
        int[][] processorIds = new int[b][];
        int[] maxNew = new int[b];
        IncrementalDecoder[] decoders = new IncrementalDecoder[b];
        for (int i = 0; i < b; i++) {
            textIds[i] = textIds(requests.get(i));
            processorIds[i] = processorView(textIds[i]);
            maxNew[i] = params.get(i).maxNewTokens();
            decoders[i] = new IncrementalDecoder(tokenizer);
        }
        long t0 = System.nanoTime();
        DecoderSession session = startSession(requests, textIds, maxNew);
        long t1 = System.nanoTime();
        List<ContinuousBatch.RowListener> listeners = new ArrayList<>(b);
        for (int i = 0; i < b; i++) {
            IncrementalDecoder decoder = decoders[i];
            RowHandler handler = handlers.get(i);
            listeners.add(new ContinuousBatch.RowListener() {
                @Override
                public void onToken(int index, int tokenId) {
                    handler.onToken(index, tokenId, decoder.add(tokenId));
                }

                @Override
                public boolean isCancelled() {
                    return handler.isCancelled();
                }

                @Override
                public void onError(RuntimeException cause) {
                    handler.onError(cause);
                }

                @Override
                public void onFinish(Generated g) {
                    decoder.flush();
                    handler.onFinish(new GenerationResult(decoder.text(), g.tokenIds(), g.finishReason(), t1 - t0,
                            System.nanoTime() - t1));
                }
            });
        }
        batch.add(session, processorIds, params, listeners);
    }

    private static int[] maxNewTokens(int rows, GenerationParams params) {
        return maxNewTokens(rows, params.maxNewTokens());
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
        LanguageModel lm = lm();
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
        boolean encDec = lm().config().isEncoderDecoder();
        int[] text = prompt;
        if (!encDec) {
            text = Arrays.copyOf(prompt, prompt.length + continuation.length);
            System.arraycopy(continuation, 0, text, prompt.length, continuation.length);
        }
        int t = config.numQueryTokens() + text.length;
        int[][] mask = new int[1][t];
        float[] embeds = inputsEmbeds(List.of(request), new int[][] {text}, t, mask);
        return lm().fullLogits(embeds, mask[0], encDec ? continuation : new int[0]);
    }

    /**
     * The ids transformers' logits processors see as the prompt: for T5 the decoder start token; for OPT the
     * image tokens (when the checkpoint has one) and the text.
     */
    int[] processorView(int[] textIds) {
        int[] decoderPrompt = lm().decoderPrompt();
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
        LanguageModel lm = lm();
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

    // ---- retrieval

    /**
     * Scores each text against one image, in the order given: ITM (queries and text together through the
     * Q-Former, cross-attending to the image; the ITM head averaged over query positions; the match probability
     * is the softmax's second value) and ITC (the best cosine over queries between the normalised projected query
     * outputs and the normalised projected [CLS] output of the text alone).
     */
    public List<MatchResult> match(float[] pixelValues, List<String> texts) {
        return match(pixelValues, texts, encodeTexts(texts));
    }

    /** {@link #match(float[], List)} with the texts tokenized already ({@link #encodeTexts}). */
    public List<MatchResult> match(float[] pixelValues, List<String> texts, List<int[]> textIds) {
        requireRetrieval();
        if (texts.isEmpty()) {
            return List.of();
        }
        int b = texts.size();
        int q = config.numQueryTokens();
        int p = config.imageTextHiddenSize();
        try (NDManager scope = manager.newSubManager()) {
            NDArray image = vision(scope, List.of(pixelValues));                                  // (1, S, E)
            float[] imageEmbeds = normalize(retrieval.visionProjection()
                    .forward(qformer.forward(queries(scope, 1), image))).toFloatArray();        // (1, Q, P)
            Text text = text(scope, textIds);
            // ITM: [queries, text] with the text's padding masked
            int l = text.length();
            float[] mask = AttentionMask.padding(text.mask(), q);                                  // (B, Q + T)
            NDArray joint = NDArrays.concat(new NDList(queries(scope, b), text.embeddings()), 1); // (B, Q + T, D)
            NDArray images = image.broadcast(new Shape(b, image.getShape().get(1), image.getShape().get(2))); // (B, S, E)
            NDArray out = qformer.forward(joint, q, Ops.create(scope, mask, b, 1, 1, q + l), images);    // (B, Q + T, D)
            float[] itm = retrieval.itmHead().forward(out.get(new NDIndex(":, :{}, :", q)))
                    .mean(new int[] {1}).toFloatArray();                                       // (B, 2)
            float[] textEmbeds = textEmbeds(text);                                               // (B, P)
            List<MatchResult> results = new ArrayList<>(b);
            for (int i = 0; i < b; i++) {
                float a = itm[2 * i];
                float c = itm[2 * i + 1];
                double prob = 1.0 / (1.0 + Math.exp(a - c));
                double best = Double.NEGATIVE_INFINITY;
                for (int k = 0; k < q; k++) {
                    double dot = 0;
                    for (int j = 0; j < p; j++) {
                        dot += imageEmbeds[k * p + j] * textEmbeds[i * p + j];
                    }
                    best = Math.max(best, dot);
                }
                results.add(new MatchResult(texts.get(i), new float[] {a, c}, prob, best));
            }
            return results;
        }
    }

    /** transformers' {@code text_embeds}: the normalised projected [CLS] output of each text, [B, P]. */
    public float[] embedTexts(List<String> texts) {
        return embedTextIds(encodeTexts(texts));
    }

    /** {@link #embedTexts} with the texts tokenized already ({@link #encodeTexts}). */
    public float[] embedTextIds(List<int[]> textIds) {
        requireRetrieval();
        try (NDManager scope = manager.newSubManager()) {
            return textEmbeds(text(scope, textIds));
        }
    }

    /** Each text's ids, with the tokenizer's special tokens ([CLS] ... [SEP] for the Q-Former's WordPiece). */
    public List<int[]> encodeTexts(List<String> texts) {
        List<int[]> ids = new ArrayList<>(texts.size());
        for (String t : texts) {
            ids.add(tokenizer.encode(t));
        }
        return ids;
    }

    private float[] textEmbeds(Text text) {
        int b = text.mask().length;
        int l = text.length();
        float[] mask = AttentionMask.padding(text.mask(), 0); // (B, T)
        NDManager scope = text.embeddings().getManager();
        NDArray out = qformer.forward(text.embeddings(), 0, Ops.create(scope, mask, b, 1, 1, l), null); // (B, T, D)
        NDArray cls = out.get(new NDIndex(":, 0, :"));                                                    // (B, D)
        return normalize(retrieval.textProjection().forward(cls)).toFloatArray();                        // (B, P)
    }

    /** Tokenised texts, right-padded: embeddings [B, T, D] and the mask. */
    private record Text(NDArray embeddings, int[][] mask, int length) {}

    private Text text(NDManager scope, List<int[]> textIds) {
        int b = textIds.size();
        int[][] ids = textIds.toArray(new int[0][]);
        int l = 0;
        for (int i = 0; i < b; i++) {
            l = Math.max(l, ids[i].length);
        }
        int max = retrieval.embeddings().maxPositions();
        if (l > max) {
            throw new IllegalArgumentException("text of " + l + " tokens exceeds the Q-Former's " + max + " positions");
        }
        int d = config.qformer().hiddenSize();
        float[] emb = new float[b * l * d];
        int[][] mask = new int[b][l];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < l; j++) {
                boolean real = j < ids[i].length;
                retrieval.embeddings().embed(real ? ids[i][j] : config.qformer().padTokenId(), j, emb, (i * l + j) * d);
                mask[i][j] = real ? 1 : 0;
            }
        }
        return new Text(Ops.create(scope, emb, b, l, d), mask, l);
    }

    @Override
    public void close() {
        tokenizer.close();
        manager.close();
        weights.close();
    }
}
