package io.blip2stream.model.llm.opt;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.llm.LanguageModel;
import io.blip2stream.model.nn.EmbeddingTable;
import io.blip2stream.model.nn.LayerNorm;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.weights.Weights;

import java.util.ArrayList;
import java.util.List;

/**
 * OPT, the decoder-only language model (transformers' {@code OPTForCausalLM}): token embeddings (optionally
 * projected in and out when {@code word_embed_proj_dim != hidden_size}), learned positions with offset 2
 * derived from the attention mask, pre-LN (or post-LN) decoder layers with a ReLU feed-forward, a final layer
 * norm and an LM head tied to the token embeddings. Decoding state lives in {@link OptSession}.
 *
 * <p>Dimensions: B batch, T new positions, S cached plus new positions, W word embedding size, D hidden,
 * N heads, H head size, F ffn size, V vocabulary.
 */
public final class OptForCausalLM implements LanguageModel {

    /** OPTAttention. */
    record Attention(Linear q, Linear k, Linear v, Linear out) {}

    /** OPTDecoderLayer. */
    record DecoderLayer(LayerNorm selfAttnLayerNorm, Attention selfAttn, LayerNorm finalLayerNorm, Linear fc1, Linear fc2) {}

    private final OptConfig config;
    final EmbeddingTable embedTokens;    // (V, W)
    final EmbeddingTable embedPositions; // (max_position_embeddings + 2, D)
    private final Linear projectIn;      // (W, D) or null
    private final Linear projectOut;     // (D, W) or null
    private final List<DecoderLayer> layers;
    private final LayerNorm finalLayerNorm; // null for post-LN models
    private final NDArray lmHeadT;          // (W, V)
    private final NDManager manager;

    private OptForCausalLM(OptConfig config, EmbeddingTable embedTokens, EmbeddingTable embedPositions, Linear projectIn,
                           Linear projectOut, List<DecoderLayer> layers, LayerNorm finalLayerNorm, NDArray lmHeadT,
                           NDManager manager) {
        this.config = config;
        this.embedTokens = embedTokens;
        this.embedPositions = embedPositions;
        this.projectIn = projectIn;
        this.projectOut = projectOut;
        this.layers = layers;
        this.finalLayerNorm = finalLayerNorm;
        this.lmHeadT = lmHeadT;
        this.manager = manager;
    }

    /** @param prefix {@code language_model} in BLIP-2 checkpoints */
    public static OptForCausalLM load(Weights w, NDManager m, OptConfig c, String prefix) {
        String dec = prefix + ".model.decoder";
        long d = c.hiddenSize();
        long wd = c.wordEmbedProjDim();
        long v = c.vocabSize();
        boolean bias = c.enableBias();
        double eps = OptConfig.LAYER_NORM_EPS;
        EmbeddingTable tokens = EmbeddingTable.load(w, dec + ".embed_tokens.weight", v, wd);
        EmbeddingTable positions = EmbeddingTable.load(w, dec + ".embed_positions.weight",
                c.maxPositionEmbeddings() + OptConfig.POSITION_OFFSET, d);
        Linear in = wd != d ? Linear.load(w, m, dec + ".project_in", wd, d, false) : null;
        Linear out = wd != d ? Linear.load(w, m, dec + ".project_out", d, wd, false) : null;
        boolean affine = c.layerNormElementwiseAffine();
        List<DecoderLayer> layers = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String l = dec + ".layers." + i;
            layers.add(new DecoderLayer(
                    affine ? LayerNorm.load(w, m, l + ".self_attn_layer_norm", d, eps) : LayerNorm.plain(eps),
                    new Attention(
                            Linear.load(w, m, l + ".self_attn.q_proj", d, d, bias),
                            Linear.load(w, m, l + ".self_attn.k_proj", d, d, bias),
                            Linear.load(w, m, l + ".self_attn.v_proj", d, d, bias),
                            Linear.load(w, m, l + ".self_attn.out_proj", d, d, bias)),
                    affine ? LayerNorm.load(w, m, l + ".final_layer_norm", d, eps) : LayerNorm.plain(eps),
                    Linear.load(w, m, l + ".fc1", d, c.ffnDim(), bias),
                    Linear.load(w, m, l + ".fc2", c.ffnDim(), d, bias)));
        }
        LayerNorm fin = !c.doLayerNormBefore() || c.removeFinalLayerNorm() ? null
                : affine ? LayerNorm.load(w, m, dec + ".final_layer_norm", d, eps) : LayerNorm.plain(eps);
        // the LM head: tied to the token embeddings unless the checkpoint says otherwise and has its own
        String head = !c.tieWordEmbeddings() && w.contains(prefix + ".lm_head.weight")
                ? prefix + ".lm_head.weight" : dec + ".embed_tokens.weight";
        NDArray headT = Ops.transposeOwned(w.load(m, head, v, wd)); // (W, V)
        return new OptForCausalLM(c, tokens, positions, in, out, layers, fin, headT, m);
    }

    NDManager manager() {
        return manager;
    }

    @Override
    public OptConfig config() {
        return config;
    }

    @Override
    public int inputWidth() {
        return embedTokens.dim();
    }

    @Override
    public int hiddenSize() {
        return config.hiddenSize();
    }

    @Override
    public void embedToken(int id, float[] dst, int offset) {
        embedTokens.copyRow(id, dst, offset);
    }

    @Override
    public int maxPositions() {
        return config.maxPositionEmbeddings();
    }

    @Override
    public int[] decoderPrompt() {
        return null;
    }

    @Override
    public float[][] fullLogits(float[] inputsEmbeds, int[] attentionMask, int[] decoderIds) {
        if (decoderIds != null && decoderIds.length > 0) {
            throw new IllegalArgumentException("a decoder-only model takes its continuation in the prompt");
        }
        return OptSession.fullLogits(this, inputsEmbeds, new int[][] {attentionMask})[0];
    }

    /**
     * Starts decoding: runs the prompt through the decoder and keeps its keys and values.
     *
     * @param inputsEmbeds  [B, T, W] flattened: token embeddings with the projected queries in place
     * @param attentionMask [B][T], 1 for real tokens, 0 for left padding
     */
    @Override
    public DecoderSession start(float[] inputsEmbeds, int[][] attentionMask) {
        return new OptSession(this, manager.newSubManager(), inputsEmbeds, attentionMask);
    }

    /**
     * One pass of the decoder over T new positions.
     *
     * @param x         inputs_embeds [B, T, W]
     * @param positions position ids [B][T] (already offset by 2 is done here)
     * @param mask      additive mask [B, 1, T, S]
     * @param cache     keys [B, N, H, S - T] and values [B, N, S - T, H] per layer, replaced by the grown ones
     * @return hidden states after the final norm and project_out, [B, T, W]
     */
    NDArray forward(NDArray x, int[][] positions, NDArray mask, KvCache cache) {
        NDManager scope = x.getManager();
        int b = positions.length;
        int t = positions[0].length;
        long d = config.hiddenSize();
        if (projectIn != null) {
            x = projectIn.forward(x); // (B, T, D)
        }
        float[] pos = new float[Math.toIntExact(b * t * d)];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < t; j++) {
                embedPositions.copyRow(positions[i][j] + OptConfig.POSITION_OFFSET, pos, (int) ((i * t + j) * d));
            }
        }
        NDArray h = x.add(Ops.create(scope, pos, b, t, d)); // (B, T, D)
        for (int i = 0; i < layers.size(); i++) {
            h = decoderLayer(layers.get(i), h, mask, cache, i);
        }
        if (finalLayerNorm != null) {
            h = finalLayerNorm.forward(h);
        }
        if (projectOut != null) {
            h = projectOut.forward(h); // (B, T, W)
        }
        return h;
    }

    /** hidden [B, T, W] to logits [B, T, V]. */
    NDArray logits(NDArray hidden) {
        return hidden.matMul(lmHeadT);
    }

    private NDArray decoderLayer(DecoderLayer l, NDArray h, NDArray mask, KvCache cache, int layerIdx) {
        boolean preLn = config.doLayerNormBefore();
        NDArray residual = h;
        if (preLn) {
            h = l.selfAttnLayerNorm().forward(h);
        }
        h = selfAttention(l.selfAttn(), h, mask, cache, layerIdx).add(residual);
        if (!preLn) {
            h = l.selfAttnLayerNorm().forward(h);
        }
        residual = h;
        if (preLn) {
            h = l.finalLayerNorm().forward(h);
        }
        h = l.fc2().forward(Ops.activation(config.activationFunction(), l.fc1().forward(h))).add(residual); // (B, T, D)
        if (!preLn) {
            h = l.finalLayerNorm().forward(h);
        }
        return h;
    }

    private NDArray selfAttention(Attention a, NDArray h, NDArray mask, KvCache cache, int layerIdx) {
        int n = config.numAttentionHeads();
        NDArray q = Ops.splitHeads(a.q().forward(h), n);            // (B, N, T, H)
        NDArray kT = Ops.splitHeadsTransposed(a.k().forward(h), n); // (B, N, H, T)
        NDArray v = Ops.splitHeads(a.v().forward(h), n);            // (B, N, T, H)
        cache.append(layerIdx, kT, v);                               // now (B, N, H, S) and (B, N, S, H)
        NDArray ctx = Ops.attention(q, cache.keysT(layerIdx), cache.values(layerIdx), mask,
                (float) Math.pow(config.headDim(), -0.5));           // (B, N, T, H)
        return a.out().forward(Ops.mergeHeads(ctx));                 // (B, T, D)
    }
}
