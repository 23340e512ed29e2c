package io.blip2stream.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.weights.Blip2WeightTree;
import io.blip2stream.model.weights.SafetensorsWriter;
import io.blip2stream.model.weights.Weights;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The shapes of the scene model and the files that describe it: BLIP-2's three parts at a size this 2-core machine
 * trains in minutes (a ViT on 64x64 images in 8x8 patches, a Q-Former of {@code queries} learned queries with
 * cross-attention every second layer, an OPT-style decoder), Hugging Face {@code config.json}s for the generation
 * and the retrieval checkpoints, and a random initialisation as transformers' {@code _init_weights} does it
 * (normal(0, 0.02) weights and embeddings, zero biases, unit LayerNorms).
 *
 * <p>Tensors that only training uses live under {@code train.}: the ViT's attribute heads, the Q-Former's
 * language-modelling head for image-grounded text generation (its decoder tied to the word embeddings), and the
 * ITC temperature. They are never exported.
 */
public record SceneModelSpec(int imageSize, int patch, int vHidden, int vLayers, int vHeads, int vInter,
                             int qHidden, int qLayers, int qHeads, int qInter, int queries, int embedDim,
                             int tHidden, int tLayers, int tHeads, int tFfn, int vocab, int maxText,
                             LanguageModelKind languageModel) {

    /**
     * The language model BLIP-2 bridges to: decoder-only (OPT's architecture) or encoder-decoder (FlanT5's, T5 v1.1:
     * RMS norms, relative position buckets, gated GELU, an LM head of its own). For T5 the {@code t*} sizes are
     * d_model, the layers of each stack, the heads (d_kv = d_model / heads) and d_ff.
     */
    public enum LanguageModelKind { OPT, T5 }

    /** The documented defaults. */
    public static SceneModelSpec defaults() {
        return new SceneModelSpec(64, 8, 96, 4, 4, 384, 96, 4, 4, 384, 8, 64, 128, 3, 4, 512,
                SceneTokenizer.vocabSize(), 32, LanguageModelKind.OPT);
    }

    /** The same shapes with the other language model. */
    public SceneModelSpec withLanguageModel(LanguageModelKind kind) {
        return new SceneModelSpec(imageSize, patch, vHidden, vLayers, vHeads, vInter, qHidden, qLayers, qHeads, qInter,
                queries, embedDim, tHidden, tLayers, tHeads, tFfn, vocab, maxText, kind);
    }

    /** The same shapes with a ViT of {@code layers} layers (the ablation without the ViT's last layer). */
    public SceneModelSpec withVisionLayers(int layers) {
        return new SceneModelSpec(imageSize, patch, vHidden, layers, vHeads, vInter, qHidden, qLayers, qHeads, qInter,
                queries, embedDim, tHidden, tLayers, tHeads, tFfn, vocab, maxText, languageModel);
    }

    boolean t5() {
        return languageModel == LanguageModelKind.T5;
    }

    /** T5's relative attention buckets and their longest distance (T5's defaults). */
    static final int T5_BUCKETS = 32;
    static final int T5_MAX_DISTANCE = 128;

    /** The T5 tree's sizes (FlanT5's: gated feed-forward, LM head untied). */
    Blip2WeightTree.T5Shapes t5Shapes() {
        return new Blip2WeightTree.T5Shapes(tHidden, tHidden, tFfn, tLayers, tLayers, tHeads, T5_BUCKETS, vocab, true, false);
    }

    /**
     * The language model's positions: the visual prompt, the prompt and what it generates (room for the command
     * line's default of 30 new tokens after a question).
     */
    static final int LM_POSITIONS = 128;

    /** Classes of each attribute the ViT is pretrained to recognise (count 1-4, shape, colour, place). */
    public static final String[] ATTRIBUTES = {"count", "shape", "colour", "place"};
    public static final int[] ATTRIBUTE_CLASSES = {4, 4, 6, 5};

    int grid() {
        return imageSize / patch;
    }

    /** A tensor of the model and how it starts ({@code std} for {@link Kind#NORMAL}). */
    record Init(String name, long[] shape, Kind kind, double std) {
        long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    enum Kind { NORMAL, ZEROS, ONES, TEMPERATURE, SINCOS_2D }

    /** Every tensor: the generation and retrieval checkpoints' together, and the training-only ones. */
    List<Init> tensors() {
        Blip2WeightTree.Shapes shapes = new Blip2WeightTree.Shapes(patch, grid(), vHidden, vInter, vLayers, queries, qHidden, qInter,
                qLayers, 2, vocab, maxText, embedDim, tHidden, tFfn, tLayers, vocab, LM_POSITIONS, tHidden, true,
                t5() ? t5Shapes() : null);
        List<Blip2WeightTree.Tensor> tree = new ArrayList<>(Blip2WeightTree.tensors(shapes, true, true));
        // training only
        for (int a = 0; a < ATTRIBUTES.length; a++) {
            Blip2WeightTree.linear(tree, "train.vision_heads." + ATTRIBUTES[a], vHidden, ATTRIBUTE_CLASSES[a]);
        }
        Blip2WeightTree.linear(tree, "train.itg_head.transform.dense", qHidden, qHidden);
        Blip2WeightTree.layerNorm(tree, "train.itg_head.transform.LayerNorm", qHidden);
        tree.add(new Blip2WeightTree.Tensor("train.itg_head.bias", new long[] {vocab}, Blip2WeightTree.Role.BIAS));
        List<Init> t = new ArrayList<>(tree.size() + 1);
        for (Blip2WeightTree.Tensor x : tree) { // as transformers' _init_weights, and MAE's position embedding
            t.add(new Init(x.name(), x.shape(), switch (x.role()) {
                case WEIGHT, EMBEDDING -> Kind.NORMAL;
                case BIAS, NORM_BIAS -> Kind.ZEROS;
                case NORM_WEIGHT -> Kind.ONES;
                case VISION_POSITIONS -> Kind.SINCOS_2D;
            }, t5() && x.name().startsWith("language_model.") ? t5Std(x.name()) : 0.02));
        }
        t.add(new Init("train.itc_temperature", new long[] {1}, Kind.TEMPERATURE, 0));
        return t;
    }

    /**
     * T5's initialisation (transformers' {@code T5PreTrainedModel._init_weights}, factor 1): the shared embeddings
     * at 1; q at (d_model * d_kv)^-0.5, k and v at d_model^-0.5, o at (heads * d_kv)^-0.5; the relative attention
     * bias and wi at d_model^-0.5, wo at d_ff^-0.5. The untied LM head, which T5 v1.1 draws at 1 and trained with
     * Adafactor, is drawn at d_model^-0.5, so that the first logits have unit scale as a tied head's do.
     */
    double t5Std(String name) {
        double d = tHidden;
        double dKv = (double) tHidden / tHeads;
        if (name.endsWith(".shared.weight")) {
            return 1.0;
        }
        if (name.endsWith(".q.weight")) {
            return Math.pow(d * dKv, -0.5);
        }
        if (name.endsWith(".o.weight")) {
            return Math.pow(tHeads * dKv, -0.5);
        }
        if (name.endsWith(".wo.weight")) {
            return Math.pow(tFfn, -0.5);
        }
        return Math.pow(d, -0.5); // k, v, wi_0, wi_1, the relative attention bias, the LM head
    }

    /** Writes a randomly initialised training state (every tensor, config.json, tokenizer) into {@code dir}. */
    void writeInitialState(Path dir, long seed) throws IOException {
        writeState(dir, seed);
    }

    /**
     * Writes a training state of this spec that takes its language model and projection (T5 or OPT) from the state in
     * {@code languageModel} and every other tensor (the ViT, the Q-Former, the retrieval and training heads) from the
     * state in {@code base}: how the encoder-decoder branch's stage 2 starts, from stage 1 and the T5 pretrained alone.
     */
    void writeMergedState(Path base, Path languageModel, Path dir) throws IOException {
        Files.createDirectories(dir);
        SafetensorsWriter w = new SafetensorsWriter();
        try (Weights b = Weights.open(base); Weights lm = Weights.open(languageModel)) {
            for (Init i : tensors()) {
                boolean fromLm = i.name().startsWith("language_model.") || i.name().startsWith("language_projection.");
                java.nio.FloatBuffer f = (fromLm ? lm : b).floats(i.name(), i.shape());
                float[] v = new float[f.remaining()];
                f.get(v);
                w.put(i.name(), v, i.shape());
            }
        }
        w.write(dir.resolve("model.safetensors"));
        writeConfig(dir, Variant.TRAINING);
        SceneTokenizer.write(dir, t5());
        writePreprocessorConfig(dir);
    }

    private void writeState(Path dir, long seed) throws IOException {
        Files.createDirectories(dir);
        SplittableRandom r = new SplittableRandom(seed);
        SafetensorsWriter w = new SafetensorsWriter();
        for (Init i : tensors()) {
            float[] v = new float[Math.toIntExact(i.numel())];
            switch (i.kind()) {
                case NORMAL -> {
                    for (int k = 0; k < v.length; k++) {
                        v[k] = (float) (gaussian(r) * i.std());
                    }
                }
                case ONES -> java.util.Arrays.fill(v, 1f);
                case TEMPERATURE -> v[0] = 0.07f;
                case SINCOS_2D -> sincos2d(v, grid(), vHidden);
                case ZEROS -> { }
            }
            w.put(i.name(), v, i.shape());
        }
        w.write(dir.resolve("model.safetensors"));
        writeConfig(dir, Variant.TRAINING);
        SceneTokenizer.write(dir, t5());
        writePreprocessorConfig(dir);
    }

    /**
     * MAE's fixed 2-D sine-cosine position embedding as the starting point of the ViT's learned one: half the
     * channels encode the row, half the column, at geometric frequencies; the [CLS] row stays zero. A ViT trained
     * from scratch on a few thousand images learns where things are far faster from it than from noise.
     */
    static void sincos2d(float[] out, int grid, int dim) {
        int quarter = dim / 4;
        for (int y = 0; y < grid; y++) {
            for (int x = 0; x < grid; x++) {
                int base = (1 + y * grid + x) * dim;
                for (int k = 0; k < quarter; k++) {
                    double omega = 1.0 / Math.pow(10000, (double) k / quarter);
                    out[base + k] = (float) Math.sin(y * omega);
                    out[base + quarter + k] = (float) Math.cos(y * omega);
                    out[base + 2 * quarter + k] = (float) Math.sin(x * omega);
                    out[base + 3 * quarter + k] = (float) Math.cos(x * omega);
                }
            }
        }
    }

    private static double gaussian(SplittableRandom r) {
        double u = 1 - r.nextDouble();
        double v = r.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }

    /** Which checkpoint a config.json describes. */
    enum Variant { GENERATION, RETRIEVAL, TRAINING }

    void writeConfig(Path dir, Variant variant) throws IOException {
        ObjectMapper m = new ObjectMapper();
        ObjectNode c = m.createObjectNode();
        c.putArray("architectures").add(variant == Variant.RETRIEVAL ? "Blip2ForImageTextRetrieval" : "Blip2ForConditionalGeneration");
        c.put("model_type", "blip-2");
        c.put("dtype", "float32");
        c.put("num_query_tokens", queries);
        c.put("image_text_hidden_size", embedDim);
        if (variant == Variant.RETRIEVAL) {
            c.putNull("image_token_index");
        } else {
            c.put("image_token_index", SceneTokenizer.IMAGE);
        }
        c.put("initializer_range", 0.02);
        c.put("initializer_factor", 1.0);
        c.put("use_decoder_only_language_model", !t5());
        ObjectNode v = c.putObject("vision_config");
        v.put("model_type", "blip_2_vision_model");
        v.put("hidden_size", vHidden);
        v.put("intermediate_size", vInter);
        v.put("num_hidden_layers", vLayers);
        v.put("num_attention_heads", vHeads);
        v.put("image_size", imageSize);
        v.put("patch_size", patch);
        v.put("hidden_act", "gelu");
        v.put("layer_norm_eps", 1e-6);
        v.put("attention_dropout", 0.0);
        v.put("initializer_range", 0.02);
        v.put("qkv_bias", true);
        ObjectNode q = c.putObject("qformer_config");
        q.put("model_type", "blip_2_qformer");
        q.put("hidden_size", qHidden);
        q.put("num_hidden_layers", qLayers);
        q.put("num_attention_heads", qHeads);
        q.put("intermediate_size", qInter);
        q.put("hidden_act", "gelu");
        q.put("hidden_dropout_prob", 0.0);
        q.put("attention_probs_dropout_prob", 0.0);
        q.put("max_position_embeddings", maxText);
        q.put("initializer_range", 0.02);
        q.put("layer_norm_eps", 1e-12);
        q.put("pad_token_id", SceneTokenizer.PAD);
        q.put("cross_attention_frequency", 2);
        q.put("encoder_hidden_size", vHidden);
        q.put("use_qformer_text_input", variant != Variant.GENERATION);
        q.put("vocab_size", vocab);
        if (t5()) {
            writeT5Config(c.putObject("text_config"));
        } else {
            writeOptConfig(c.putObject("text_config"));
        }
        m.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("config.json").toFile(), c);
        if (variant == Variant.GENERATION) {
            ObjectNode g = m.createObjectNode();
            if (t5()) {
                g.put("decoder_start_token_id", SceneTokenizer.PAD);
            } else {
                g.put("bos_token_id", SceneTokenizer.EOS);
            }
            g.put("eos_token_id", SceneTokenizer.EOS);
            g.put("pad_token_id", SceneTokenizer.PAD);
            g.put("max_new_tokens", 12);
            m.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("generation_config.json").toFile(), g);
        }
    }

    /** T5 v1.1's (FlanT5's) text_config at this size: gated GELU, no tied head, the decoder starting from {@code <pad>}. */
    private void writeT5Config(ObjectNode t) {
        t.putArray("architectures").add("T5ForConditionalGeneration");
        t.put("model_type", "t5");
        t.put("vocab_size", vocab);
        t.put("d_model", tHidden);
        t.put("d_kv", tHidden / tHeads);
        t.put("d_ff", tFfn);
        t.put("num_layers", tLayers);
        t.put("num_decoder_layers", tLayers);
        t.put("num_heads", tHeads);
        t.put("relative_attention_num_buckets", T5_BUCKETS);
        t.put("relative_attention_max_distance", T5_MAX_DISTANCE);
        t.put("dropout_rate", 0.0);
        t.put("layer_norm_epsilon", 1e-6);
        t.put("initializer_factor", 1.0);
        t.put("feed_forward_proj", "gated-gelu");
        t.put("is_encoder_decoder", true);
        t.put("use_cache", true);
        t.put("pad_token_id", SceneTokenizer.PAD);
        t.put("eos_token_id", SceneTokenizer.EOS);
        t.put("decoder_start_token_id", SceneTokenizer.PAD);
        t.put("tie_word_embeddings", false);
    }

    private void writeOptConfig(ObjectNode t) {
        t.put("model_type", "opt");
        t.put("vocab_size", vocab);
        t.put("hidden_size", tHidden);
        t.put("num_hidden_layers", tLayers);
        t.put("num_attention_heads", tHeads);
        t.put("ffn_dim", tFfn);
        t.put("max_position_embeddings", LM_POSITIONS);
        t.put("word_embed_proj_dim", tHidden);
        t.put("do_layer_norm_before", true);
        t.put("_remove_final_layer_norm", false);
        t.put("activation_function", "relu");
        t.put("enable_bias", true);
        t.put("layer_norm_elementwise_affine", true);
        t.put("dropout", 0.0);
        t.put("attention_dropout", 0.0);
        t.put("layerdrop", 0.0);
        t.put("init_std", 0.02);
        t.put("bos_token_id", SceneTokenizer.EOS);
        t.put("eos_token_id", SceneTokenizer.EOS);
        t.put("pad_token_id", SceneTokenizer.PAD);
        t.put("tie_word_embeddings", true);
        t.put("use_cache", true);
    }

    void writePreprocessorConfig(Path dir) throws IOException {
        Files.writeString(dir.resolve("preprocessor_config.json"), "{\n  \"do_convert_rgb\": true,\n  \"do_normalize\": true,\n"
                + "  \"do_rescale\": true,\n  \"do_resize\": true,\n  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
                + "  \"image_processor_type\": \"BlipImageProcessor\",\n"
                + "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n  \"resample\": 3,\n"
                + "  \"rescale_factor\": 0.00392156862745098,\n  \"size\": {\"height\": " + imageSize + ", \"width\": " + imageSize + "}\n}\n");
    }
}
