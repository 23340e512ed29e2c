package io.blip2stream.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.weights.Blip2WeightTree;
import io.blip2stream.model.weights.SafetensorsWriter;
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
                             int tHidden, int tLayers, int tHeads, int tFfn, int vocab, int maxText) {

    /** The documented defaults. */
    public static SceneModelSpec defaults() {
        return new SceneModelSpec(64, 8, 96, 4, 4, 384, 96, 4, 4, 384, 8, 64, 128, 3, 4, 512,
                SceneTokenizer.vocabSize(), 32);
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

    /** A tensor of the model and how it starts. */
    record Init(String name, long[] shape, Kind kind) {
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
                qLayers, 2, vocab, maxText, embedDim, tHidden, tFfn, tLayers, vocab, LM_POSITIONS, tHidden, true);
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
            }));
        }
        t.add(new Init("train.itc_temperature", new long[] {1}, Kind.TEMPERATURE));
        return t;
    }

    /** Writes a randomly initialised training state (every tensor, config.json, tokenizer) into {@code dir}. */
    void writeInitialState(Path dir, long seed) throws IOException {
        Files.createDirectories(dir);
        SplittableRandom r = new SplittableRandom(seed);
        SafetensorsWriter w = new SafetensorsWriter();
        for (Init i : tensors()) {
            float[] v = new float[Math.toIntExact(i.numel())];
            switch (i.kind()) {
                case NORMAL -> {
                    for (int k = 0; k < v.length; k++) {
                        v[k] = (float) (gaussian(r) * 0.02);
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
        SceneTokenizer.write(dir);
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
        c.put("use_decoder_only_language_model", true);
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
        ObjectNode t = c.putObject("text_config");
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
        m.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("config.json").toFile(), c);
        if (variant == Variant.GENERATION) {
            ObjectNode g = m.createObjectNode();
            g.put("bos_token_id", SceneTokenizer.EOS);
            g.put("eos_token_id", SceneTokenizer.EOS);
            g.put("pad_token_id", SceneTokenizer.PAD);
            g.put("max_new_tokens", 12);
            m.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("generation_config.json").toFile(), g);
        }
    }

    void writePreprocessorConfig(Path dir) throws IOException {
        Files.writeString(dir.resolve("preprocessor_config.json"), "{\n  \"do_convert_rgb\": true,\n  \"do_normalize\": true,\n"
                + "  \"do_rescale\": true,\n  \"do_resize\": true,\n  \"image_mean\": [0.48145466, 0.4578275, 0.40821073],\n"
                + "  \"image_processor_type\": \"BlipImageProcessor\",\n"
                + "  \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n  \"resample\": 3,\n"
                + "  \"rescale_factor\": 0.00392156862745098,\n  \"size\": {\"height\": " + imageSize + ", \"width\": " + imageSize + "}\n}\n");
    }
}
