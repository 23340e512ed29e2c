package io.blip2stream.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.GenerationDefaults;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.config.PreprocessorConfig;
import io.blip2stream.model.config.T5Config;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.image.BlipImageProcessor;
import io.blip2stream.model.llm.LanguageModel;
import io.blip2stream.model.llm.opt.OptForCausalLM;
import io.blip2stream.model.llm.t5.T5ForConditionalGeneration;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.OneDnnWeight;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.nn.WeightStreaming;
import io.blip2stream.model.qformer.Blip2QFormerModel;
import io.blip2stream.model.qformer.Blip2TextEmbeddings;
import io.blip2stream.model.text.TextTokenizer;
import io.blip2stream.model.vision.Blip2VisionModel;
import io.blip2stream.model.weights.Blip2WeightTree;
import io.blip2stream.model.weights.Precision;
import io.blip2stream.model.weights.Weights;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
    private static final Logger LOG = LoggerFactory.getLogger(Blip2Model.class);

    /** What the image side produces for a batch, row-major float32 arrays. */
    public record ImageFeatures(int batch,
                                float[] visionLastHiddenState,  // (B, S, E), null unless asked for
                                float[] qformerLastHiddenState, // (B, Q, D), null unless asked for
                                float[] languageProjection,     // (B, Q, L), null for retrieval checkpoints
                                float[] imageEmbeds,            // (B, Q, P) normalised, retrieval checkpoints only
                                long visionNanos, long qformerNanos) {}

    private final Path dir;
    private final Blip2Config config;
    private final BlipImageProcessor processor;
    private final TextTokenizer tokenizer;
    private final NDManager manager;
    private final Weights weights;
    private final Precision precision;
    private final Blip2VisionModel vision;
    private final NDArray queryTokens; // (1, Q, D)
    private final Blip2QFormerModel qformer;
    private final Linear languageProjection; // (D, L), null for retrieval
    private final Linear visionProjection;   // (D, P), null for generation
    private final Blip2Generation generation; // null for retrieval
    private final Blip2Retrieval retrieval;   // null for generation

    private Blip2Model(Path dir, Blip2Config config, BlipImageProcessor processor, TextTokenizer tokenizer,
                       GenerationDefaults generationDefaults, NDManager manager, Weights weights, Precision precision,
                       Blip2VisionModel vision, NDArray queryTokens, Blip2QFormerModel qformer, Linear languageProjection,
                       LanguageModel languageModel, Blip2Retrieval.Heads heads) {
        this.dir = dir;
        this.config = config;
        this.processor = processor;
        this.tokenizer = tokenizer;
        this.manager = manager;
        this.weights = weights;
        this.precision = precision;
        this.vision = vision;
        this.queryTokens = queryTokens;
        this.qformer = qformer;
        this.languageProjection = languageProjection;
        this.visionProjection = heads == null ? null : heads.visionProjection();
        this.generation = languageModel == null ? null : new Blip2Generation(config, tokenizer, languageModel, generationDefaults);
        this.retrieval = heads == null ? null : new Blip2Retrieval(this, qformer, heads, manager);
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
        List<String> unused = Blip2WeightTree.unexpected(config, stored.names());
        if (!unused.isEmpty()) {
            LOG.warn("{} holds {} tensors that BLIP-2 does not use (another export, or another model?): {}{}", dir, unused.size(),
                    unused.subList(0, Math.min(5, unused.size())), unused.size() > 5 ? " ..." : "");
        }
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
            Blip2Retrieval.Heads heads = null;
            if (retrieval) {
                int p = config.imageTextHiddenSize();
                heads = new Blip2Retrieval.Heads(Blip2TextEmbeddings.load(weights, config.qformer(), "embeddings"),
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
        return nameOf(dir);
    }

    /** A checkpoint folder's name, as {@link #name} gives it, without loading it. */
    public static String nameOf(Path dir) {
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
            generation.generate(List.of(new GenerationRequest(visualPrompt(f, 0), null)),
                    io.blip2stream.model.generation.GenerationParams.greedy(2));
        }
        return (System.nanoTime() - t0) / 1_000_000;
    }

    /** Whether this checkpoint generates text (OPT or FlanT5). */
    public boolean canGenerate() {
        return generation != null;
    }

    /** Whether this checkpoint matches and embeds (a retrieval checkpoint). */
    public boolean canMatch() {
        return retrieval != null;
    }

    /**
     * The text side of a {@code Blip2ForConditionalGeneration} checkpoint: prompts, generation, continuous batches.
     *
     * @throws IllegalStateException for a retrieval checkpoint
     */
    public Blip2Generation generation() {
        if (generation == null) {
            throw new IllegalStateException(dir + " is a retrieval checkpoint: it matches and embeds but does not generate text");
        }
        return generation;
    }

    /**
     * The heads of a {@code Blip2ForImageTextRetrieval} checkpoint: ITM, ITC and text embeddings.
     *
     * @throws IllegalStateException for a generation checkpoint
     */
    public Blip2Retrieval retrieval() {
        if (retrieval == null) {
            throw new IllegalStateException(dir + " is not a retrieval checkpoint (Blip2ForImageTextRetrieval): it cannot match or embed texts");
        }
        return retrieval;
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
                embeds = normalize(visionProjection.forward(queryOut)).toFloatArray(); // (B, Q, P)
            }
            long t2 = System.nanoTime();
            return new ImageFeatures(b, intermediates ? visionOut : null, qOut, proj, embeds, t1 - t0, t2 - t1);
        }
    }

    NDArray vision(NDManager scope, List<float[]> pixelValues) {
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

    NDArray queries(NDManager scope, int b) {
        return scope.zeros(new Shape(b, config.numQueryTokens(), config.qformer().hiddenSize())).add(queryTokens); // (B, Q, D)
    }

    /** F.normalize over the last axis: x / max(|x|, 1e-12). */
    static NDArray normalize(NDArray x) {
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
        int per = q * generation().projectionWidth();
        return Arrays.copyOfRange(features.languageProjection(), i * per, i * per + q * generation.languageWidth());
    }

    @Override
    public void close() {
        tokenizer.close();
        manager.close();
        weights.close();
    }
}
