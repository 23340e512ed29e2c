package io.blip2stream.model.weights;

import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.config.QFormerConfig;
import io.blip2stream.model.config.T5Config;
import io.blip2stream.model.config.VisionConfig;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * BLIP-2's Hugging Face weight-name tree with an OPT or a T5 language model, written once: every tensor of
 * {@code Blip2ForConditionalGeneration} and of {@code Blip2ForImageTextRetrieval} by its name in transformers'
 * module tree, with its shape and its role. The checkpoints this project writes take their names from here:
 * {@code synthetic} (random weights at real sizes) and {@code train} (the scene models' initial state); the loader
 * checks a checkpoint against it ({@link #unexpected}), as transformers reports weights it did not use.
 *
 * <p>Order: the vision encoder, the queries, the Q-Former's text embeddings (retrieval), the Q-Former layer by layer,
 * the retrieval heads, the language projection and the language model (generation). Writers that draw random
 * values draw them in this order.
 */
public final class Blip2WeightTree {
    private Blip2WeightTree() {}

    /** What a tensor is, so that a writer can give it its starting values. */
    public enum Role {
        /** a linear layer's or a convolution's weight, [out, in, ...] */
        WEIGHT,
        /** a linear layer's or a convolution's bias */
        BIAS,
        /** a layer norm's scale */
        NORM_WEIGHT,
        /** a layer norm's shift */
        NORM_BIAS,
        /** an embedding table, the queries, the [CLS] embedding */
        EMBEDDING,
        /** the ViT's position embedding, [1, 1 + grid^2, E] */
        VISION_POSITIONS
    }

    /** One tensor: its name, its shape and its role. */
    public record Tensor(String name, long[] shape, Role role) {
        public long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    /**
     * The sizes the tree depends on.
     *
     * @param grid             the ViT's patches per side (image size / patch)
     * @param crossAttentionFrequency a Q-Former layer cross-attends to the image when its index is a multiple of this
     * @param qformerVocab     the Q-Former's text vocabulary (retrieval)
     * @param qformerPositions the Q-Former's text positions (retrieval)
     * @param embedDim         the retrieval embedding size
     * @param lmPositions      the OPT's positions (its table holds 2 more: OPT's offset)
     * @param wordEmbedProjDim OPT's {@code word_embed_proj_dim} (its input embeddings' width)
     * @param finalLayerNorm   OPT's {@code do_layer_norm_before}: a final layer norm after the decoder
     */
    public record Shapes(int patch, int grid, int vHidden, int vInter, int vLayers,
                         int queries, int qHidden, int qInter, int qLayers, int crossAttentionFrequency, int qformerVocab, int qformerPositions, int embedDim,
                         int lmHidden, int lmFfn, int lmLayers, int vocab, int lmPositions, int wordEmbedProjDim,
                         boolean finalLayerNorm, T5Shapes t5) {

        /** The same with an OPT language model (the OPT sizes above). */
        public Shapes(int patch, int grid, int vHidden, int vInter, int vLayers, int queries, int qHidden, int qInter,
                      int qLayers, int crossAttentionFrequency, int qformerVocab, int qformerPositions, int embedDim,
                      int lmHidden, int lmFfn, int lmLayers, int vocab, int lmPositions, int wordEmbedProjDim,
                      boolean finalLayerNorm) {
            this(patch, grid, vHidden, vInter, vLayers, queries, qHidden, qInter, qLayers, crossAttentionFrequency,
                    qformerVocab, qformerPositions, embedDim, lmHidden, lmFfn, lmLayers, vocab, lmPositions,
                    wordEmbedProjDim, finalLayerNorm, null);
        }
    }

    /**
     * The sizes of a T5 language model (transformers' {@code T5ForConditionalGeneration}; FlanT5 is T5 v1.1).
     *
     * @param gated      a gated feed-forward ({@code wi_0}, {@code wi_1}), as T5 v1.1's "gated-gelu"
     * @param tiedHead   the LM head is the shared embeddings ({@code tie_word_embeddings}); FlanT5 has its own
     */
    public record T5Shapes(int dModel, int innerDim, int dFf, int encoderLayers, int decoderLayers, int heads,
                           int buckets, int vocab, boolean gated, boolean tiedHead) {}

    /**
     * The sizes of a checkpoint's tree, from its config; empty for a language model the tree does not hold.
     */
    public static Optional<Shapes> shapes(Blip2Config c) {
        if (!plausible(c)) {
            return Optional.empty(); // the loader names what is missing; a tree of a billion layers would not fit in memory
        }
        if (!c.isRetrieval() && c.text() instanceof T5Config t5) {
            VisionConfig v = c.vision();
            QFormerConfig q = c.qformer();
            return Optional.of(new Shapes(v.patchSize(), v.imageSize() / v.patchSize(), v.hiddenSize(), v.intermediateSize(),
                    v.numHiddenLayers(), c.numQueryTokens(), q.hiddenSize(), q.intermediateSize(), q.numHiddenLayers(),
                    q.crossAttentionFrequency(), q.vocabSize(), q.maxPositionEmbeddings(), c.imageTextHiddenSize(),
                    0, 0, 0, 0, 0, 0, false, new T5Shapes(t5.dModel(), t5.innerDim(), t5.dFf(), t5.numLayers(),
                    t5.numDecoderLayers(), t5.numHeads(), t5.relativeAttentionNumBuckets(), t5.vocabSize(), t5.gatedAct(),
                    t5.tieWordEmbeddings())));
        }
        if (!c.isRetrieval() && !(c.text() instanceof OptConfig)) {
            return Optional.empty();
        }
        VisionConfig v = c.vision();
        QFormerConfig q = c.qformer();
        OptConfig opt = c.isRetrieval() ? null : c.opt();
        return Optional.of(new Shapes(v.patchSize(), v.imageSize() / v.patchSize(), v.hiddenSize(), v.intermediateSize(),
                v.numHiddenLayers(), c.numQueryTokens(), q.hiddenSize(), q.intermediateSize(), q.numHiddenLayers(),
                q.crossAttentionFrequency(), q.vocabSize(),
                q.maxPositionEmbeddings(), c.imageTextHiddenSize(),
                opt == null ? 0 : opt.hiddenSize(), opt == null ? 0 : opt.ffnDim(), opt == null ? 0 : opt.numHiddenLayers(),
                opt == null ? 0 : opt.vocabSize(), opt == null ? 0 : opt.maxPositionEmbeddings(),
                opt == null ? 0 : opt.wordEmbedProjDim(), opt != null && opt.doLayerNormBefore() && !opt.removeFinalLayerNorm()));
    }

    /** The most layers a stack of a real checkpoint has (ViT-g: 39, OPT-6.7b: 32, FlanT5-XXL: 24), with room to spare. */
    static final int MAX_LAYERS = 1024;

    /** Whether the config's layer counts could describe a checkpoint at all. */
    private static boolean plausible(Blip2Config c) {
        List<Integer> layers = new ArrayList<>(List.of(c.vision().numHiddenLayers(), c.qformer().numHiddenLayers()));
        if (c.text() instanceof T5Config t5) {
            layers.add(t5.numLayers());
            layers.add(t5.numDecoderLayers());
        } else if (c.text() instanceof OptConfig opt) {
            layers.add(opt.numHiddenLayers());
        }
        return layers.stream().allMatch(n -> n >= 0 && n <= MAX_LAYERS);
    }

    /**
     * The tensors of a checkpoint's own tree, from its config; empty for a language model the tree does not hold.
     */
    public static List<Tensor> tensors(Blip2Config c) {
        return shapes(c).map(s -> tensors(s, !c.isRetrieval(), c.isRetrieval())).orElse(List.of());
    }

    /**
     * The tensors a checkpoint holds that BLIP-2 does not read: names neither in its tree nor one of the variants the
     * loader takes instead (the vision encoder's {@code q_bias} and {@code v_bias}, an untied {@code lm_head}). What a
     * newer or different export adds, or a checkpoint of another model given by mistake. Empty when the tree does not
     * hold the checkpoint's language model.
     */
    public static List<String> unexpected(Blip2Config c, Collection<String> names) {
        List<Tensor> tree = tensors(c);
        if (tree.isEmpty()) {
            return List.of();
        }
        Set<String> known = new HashSet<>();
        tree.forEach(t -> known.add(t.name()));
        for (int i = 0; i < c.vision().numHiddenLayers(); i++) {
            known.add("vision_model.encoder.layers." + i + ".self_attn.q_bias");
            known.add("vision_model.encoder.layers." + i + ".self_attn.v_bias");
        }
        known.add("language_model.lm_head.weight");
        // T5: the stacks' token embeddings are the shared ones (tied in transformers, saved by some exports)
        known.add("language_model.encoder.embed_tokens.weight");
        known.add("language_model.decoder.embed_tokens.weight");
        return names.stream().filter(n -> !known.contains(n)).sorted().toList();
    }

    /**
     * The tensors of a checkpoint.
     *
     * @param generation the language projection and the language model, OPT or T5 ({@code Blip2ForConditionalGeneration})
     * @param retrieval  the Q-Former's text side and the retrieval heads ({@code Blip2ForImageTextRetrieval})
     */
    public static List<Tensor> tensors(Shapes s, boolean generation, boolean retrieval) {
        List<Tensor> t = new ArrayList<>();
        long vd = s.vHidden();
        t.add(new Tensor("vision_model.embeddings.class_embedding", new long[] {1, 1, vd}, Role.EMBEDDING));
        t.add(new Tensor("vision_model.embeddings.patch_embedding.weight", new long[] {vd, 3, s.patch(), s.patch()}, Role.WEIGHT));
        t.add(new Tensor("vision_model.embeddings.patch_embedding.bias", new long[] {vd}, Role.BIAS));
        t.add(new Tensor("vision_model.embeddings.position_embedding", new long[] {1, (long) s.grid() * s.grid() + 1, vd},
                Role.VISION_POSITIONS));
        for (int i = 0; i < s.vLayers(); i++) {
            String p = "vision_model.encoder.layers." + i;
            layerNorm(t, p + ".layer_norm1", vd);
            linear(t, p + ".self_attn.qkv", vd, 3 * vd);
            linear(t, p + ".self_attn.projection", vd, vd);
            layerNorm(t, p + ".layer_norm2", vd);
            linear(t, p + ".mlp.fc1", vd, s.vInter());
            linear(t, p + ".mlp.fc2", s.vInter(), vd);
        }
        layerNorm(t, "vision_model.post_layernorm", vd);
        long qd = s.qHidden();
        t.add(new Tensor("query_tokens", new long[] {1, s.queries(), qd}, Role.EMBEDDING));
        if (retrieval) {
            t.add(new Tensor("embeddings.word_embeddings.weight", new long[] {s.qformerVocab(), qd}, Role.EMBEDDING));
            t.add(new Tensor("embeddings.position_embeddings.weight", new long[] {s.qformerPositions(), qd}, Role.EMBEDDING));
        }
        layerNorm(t, "qformer.layernorm", qd);
        for (int i = 0; i < s.qLayers(); i++) {
            String p = "qformer.encoder.layer." + i;
            attention(t, p + ".attention", qd, qd);
            if (i % s.crossAttentionFrequency() == 0) { // cross-attention to the image (every second layer in BLIP-2)
                attention(t, p + ".crossattention", qd, vd);
            }
            linear(t, p + ".intermediate_query.dense", qd, s.qInter());
            linear(t, p + ".output_query.dense", s.qInter(), qd);
            layerNorm(t, p + ".output_query.LayerNorm", qd);
            if (retrieval) { // the text's own feed-forward
                linear(t, p + ".intermediate.dense", qd, s.qInter());
                linear(t, p + ".output.dense", s.qInter(), qd);
                layerNorm(t, p + ".output.LayerNorm", qd);
            }
        }
        if (retrieval) {
            linear(t, "vision_projection", qd, s.embedDim());
            linear(t, "text_projection", qd, s.embedDim());
            linear(t, "itm_head", qd, 2);
        }
        if (generation && s.t5() != null) {
            linear(t, "language_projection", s.qHidden(), s.t5().dModel());
            t5(t, "language_model", s.t5());
        } else if (generation) {
            opt(t, s);
        }
        return t;
    }

    /**
     * T5's tree (T5 v1.1 / FlanT5): the shared embeddings, the encoder's and the decoder's blocks (RMS norms with a
     * weight only, attention and feed-forward without biases), the relative attention bias in each stack's first
     * block, the final norms, and the LM head unless tied.
     */
    public static void t5(List<Tensor> t, String prefix, T5Shapes s) {
        long d = s.dModel();
        t.add(new Tensor(prefix + ".shared.weight", new long[] {s.vocab(), d}, Role.EMBEDDING));
        for (String stack : new String[] {"encoder", "decoder"}) {
            boolean decoder = stack.equals("decoder");
            int layers = decoder ? s.decoderLayers() : s.encoderLayers();
            for (int i = 0; i < layers; i++) {
                String b = prefix + "." + stack + ".block." + i + ".layer.";
                t5Attention(t, b + "0.SelfAttention", d, s.innerDim());
                if (i == 0) {
                    t.add(new Tensor(b + "0.SelfAttention.relative_attention_bias.weight", new long[] {s.buckets(), s.heads()},
                            Role.EMBEDDING));
                }
                t.add(new Tensor(b + "0.layer_norm.weight", new long[] {d}, Role.NORM_WEIGHT));
                int ff = 1;
                if (decoder) {
                    t5Attention(t, b + "1.EncDecAttention", d, s.innerDim());
                    t.add(new Tensor(b + "1.layer_norm.weight", new long[] {d}, Role.NORM_WEIGHT));
                    ff = 2;
                }
                String f = b + ff + ".DenseReluDense.";
                if (s.gated()) {
                    t.add(new Tensor(f + "wi_0.weight", new long[] {s.dFf(), d}, Role.WEIGHT));
                    t.add(new Tensor(f + "wi_1.weight", new long[] {s.dFf(), d}, Role.WEIGHT));
                } else {
                    t.add(new Tensor(f + "wi.weight", new long[] {s.dFf(), d}, Role.WEIGHT));
                }
                t.add(new Tensor(f + "wo.weight", new long[] {d, s.dFf()}, Role.WEIGHT));
                t.add(new Tensor(b + ff + ".layer_norm.weight", new long[] {d}, Role.NORM_WEIGHT));
            }
            t.add(new Tensor(prefix + "." + stack + ".final_layer_norm.weight", new long[] {d}, Role.NORM_WEIGHT));
        }
        if (!s.tiedHead()) {
            t.add(new Tensor(prefix + ".lm_head.weight", new long[] {s.vocab(), d}, Role.WEIGHT));
        }
    }

    /** T5Attention: q, k, v [inner, d] and o [d, inner], no biases. */
    private static void t5Attention(List<Tensor> t, String p, long d, long inner) {
        for (String x : new String[] {"q", "k", "v"}) {
            t.add(new Tensor(p + "." + x + ".weight", new long[] {inner, d}, Role.WEIGHT));
        }
        t.add(new Tensor(p + ".o.weight", new long[] {d, inner}, Role.WEIGHT));
    }

    private static void opt(List<Tensor> t, Shapes s) {
        long h = s.lmHidden();
        linear(t, "language_projection", s.qHidden(), h);
        String d = "language_model.model.decoder";
        t.add(new Tensor(d + ".embed_tokens.weight", new long[] {s.vocab(), s.wordEmbedProjDim()}, Role.EMBEDDING));
        t.add(new Tensor(d + ".embed_positions.weight", new long[] {s.lmPositions() + 2L, h}, Role.EMBEDDING));
        if (s.wordEmbedProjDim() != h) {
            t.add(new Tensor(d + ".project_in.weight", new long[] {h, s.wordEmbedProjDim()}, Role.WEIGHT));
            t.add(new Tensor(d + ".project_out.weight", new long[] {s.wordEmbedProjDim(), h}, Role.WEIGHT));
        }
        for (int i = 0; i < s.lmLayers(); i++) {
            String p = d + ".layers." + i;
            for (String proj : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                linear(t, p + ".self_attn." + proj, h, h);
            }
            layerNorm(t, p + ".self_attn_layer_norm", h);
            linear(t, p + ".fc1", h, s.lmFfn());
            linear(t, p + ".fc2", s.lmFfn(), h);
            layerNorm(t, p + ".final_layer_norm", h);
        }
        if (s.finalLayerNorm()) {
            layerNorm(t, d + ".final_layer_norm", h);
        }
    }

    /** A BERT-style attention block of the Q-Former: query, key, value (keys and values from width {@code kv}), output. */
    private static void attention(List<Tensor> t, String p, long d, long kv) {
        linear(t, p + ".attention.query", d, d);
        linear(t, p + ".attention.key", kv, d);
        linear(t, p + ".attention.value", kv, d);
        linear(t, p + ".output.dense", d, d);
        layerNorm(t, p + ".output.LayerNorm", d);
    }

    /** {@code p.weight} [out, in] and {@code p.bias} [out], as torch.nn.Linear stores them. */
    public static void linear(List<Tensor> t, String p, long in, long out) {
        t.add(new Tensor(p + ".weight", new long[] {out, in}, Role.WEIGHT));
        t.add(new Tensor(p + ".bias", new long[] {out}, Role.BIAS));
    }

    /** {@code p.weight} and {@code p.bias}, [d] each. */
    public static void layerNorm(List<Tensor> t, String p, long d) {
        t.add(new Tensor(p + ".weight", new long[] {d}, Role.NORM_WEIGHT));
        t.add(new Tensor(p + ".bias", new long[] {d}, Role.NORM_BIAS));
    }
}
