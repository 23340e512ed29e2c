package io.blip2stream.model.llm.opt;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.llm.LanguageModel;
import io.blip2stream.model.nn.AttentionMask;
import io.blip2stream.model.nn.EmbeddingTable;
import io.blip2stream.model.nn.LayerNorm;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.LowPrecisionWeight;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.weights.Precision;
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

    /**
     * OPTAttention with q_proj, k_proj and v_proj fused into one projection [D, 3D] (one GEMM instead of three)
     * and the query scale {@code head_dim^-0.5} folded into the query part of its weight and bias.
     */
    record Attention(Linear qkv, Linear out) {}

    /** OPTDecoderLayer. */
    record DecoderLayer(LayerNorm selfAttnLayerNorm, Attention selfAttn, LayerNorm finalLayerNorm, Linear fc1, Linear fc2) {}

    private final OptConfig config;
    final EmbeddingTable embedTokens;    // (V, W)
    final EmbeddingTable embedPositions; // (max_position_embeddings + 2, D)
    private final Linear projectIn;      // (W, D) or null
    private final Linear projectOut;     // (D, W) or null
    private final List<DecoderLayer> layers;
    private final LayerNorm finalLayerNorm; // null for post-LN models
    private final NDArray lmHeadT;          // (W, V); null when training ties it to the embedding array, or in low precision
    private final LowPrecisionWeight lmHead; // (V, W) in bfloat16 or int8; else null
    private final NDManager manager;
    private final OptTfDecodeLayer fusedDecodeLayer; // TensorFlow: a decode step's layer as one function; else null
    private final OptStreamedDecodeLayer streamedDecode; // TensorFlow, bfloat16 or int8: a decode step streamed; else null

    private OptForCausalLM(OptConfig config, EmbeddingTable embedTokens, EmbeddingTable embedPositions, Linear projectIn,
                           Linear projectOut, List<DecoderLayer> layers, LayerNorm finalLayerNorm, NDArray lmHeadT,
                           LowPrecisionWeight lmHead, NDManager manager) {
        this.config = config;
        this.embedTokens = embedTokens;
        this.embedPositions = embedPositions;
        this.projectIn = projectIn;
        this.projectOut = projectOut;
        this.layers = layers;
        this.finalLayerNorm = finalLayerNorm;
        this.lmHeadT = lmHeadT;
        this.lmHead = lmHead;
        this.manager = manager;
        // the fused layer takes float32 weights as engine arrays; low precision decodes layer by layer
        boolean applies = OptTfDecodeLayer.applies(manager, config);
        this.fusedDecodeLayer = lmHead == null && applies ? OptTfDecodeLayer.build(manager, config) : null;
        this.streamedDecode = lmHead != null && lmHead.multipliesArrays() && applies && projectIn == null && projectOut == null
                ? OptStreamedDecodeLayer.build(config, layers, finalLayerNorm) : null;
    }

    /** @param prefix {@code language_model} in BLIP-2 checkpoints */
    public static OptForCausalLM load(Weights w, NDManager m, OptConfig c, String prefix) {
        String dec = prefix + ".model.decoder";
        long d = c.hiddenSize();
        long wd = c.wordEmbedProjDim();
        long v = c.vocabSize();
        boolean bias = c.enableBias();
        double eps = OptConfig.LAYER_NORM_EPS;
        EmbeddingTable tokens = EmbeddingTable.load(w, m, dec + ".embed_tokens.weight", v, wd);
        EmbeddingTable positions = EmbeddingTable.load(w, m, dec + ".embed_positions.weight",
                c.maxPositionEmbeddings() + OptConfig.POSITION_OFFSET, d);
        Linear in = wd != d ? Linear.load(w, m, dec + ".project_in", wd, d, false) : null;
        Linear out = wd != d ? Linear.load(w, m, dec + ".project_out", d, wd, false) : null;
        boolean affine = c.layerNormElementwiseAffine();
        List<DecoderLayer> layers = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String l = dec + ".layers." + i;
            layers.add(new DecoderLayer(
                    affine ? LayerNorm.load(w, m, l + ".self_attn_layer_norm", d, eps) : LayerNorm.plain(m, eps),
                    new Attention(fusedQkv(w, m, c, l + ".self_attn"),
                            Linear.load(w, m, l + ".self_attn.out_proj", d, d, bias)),
                    affine ? LayerNorm.load(w, m, l + ".final_layer_norm", d, eps) : LayerNorm.plain(m, eps),
                    Linear.load(w, m, l + ".fc1", d, c.ffnDim(), bias),
                    Linear.load(w, m, l + ".fc2", c.ffnDim(), d, bias)));
        }
        LayerNorm fin = !c.doLayerNormBefore() || c.removeFinalLayerNorm() ? null
                : affine ? LayerNorm.load(w, m, dec + ".final_layer_norm", d, eps) : LayerNorm.plain(m, eps);
        // the LM head: tied to the token embeddings unless the checkpoint says otherwise and has its own
        String head = !c.tieWordEmbeddings() && w.contains(prefix + ".lm_head.weight")
                ? prefix + ".lm_head.weight" : dec + ".embed_tokens.weight";
        // training ties the head to the embedding array itself (transposed at each use, so that both get the
        // gradient): no head array then
        boolean lowHead = w.precision() != Precision.FLOAT32;
        NDArray headT = lowHead || w.isRecording() && head.equals(dec + ".embed_tokens.weight")
                ? null : w.loadTransposed(m, head, v, wd); // (W, V)
        // in bfloat16 or int8 the head is kept [V, W] as stored (tied: a second, compact copy of the table, which
        // itself is read from the mapping)
        LowPrecisionWeight lowPrecisionHead = lowHead
                ? LowPrecisionWeight.load(w, m, w.precision(), wd, List.of(new LowPrecisionWeight.Part(head, v, 1f))) : null;
        return new OptForCausalLM(c, tokens, positions, in, out, layers, fin, headT, lowPrecisionHead, m);
    }

    /** q_proj, k_proj and v_proj as one Linear [D, 3D], the query part scaled by {@code head_dim^-0.5}. */
    private static Linear fusedQkv(Weights w, NDManager m, OptConfig c, String prefix) {
        long d = c.hiddenSize();
        boolean bias = c.enableBias();
        float scale = (float) Math.pow(c.headDim(), -0.5);
        if (w.precision() != Precision.FLOAT32) {
            // stacked along the output axis and converted row by row from the checkpoint, the scale folded in
            LowPrecisionWeight qkv = LowPrecisionWeight.load(w, m, w.precision(), d, List.of(
                    new LowPrecisionWeight.Part(prefix + ".q_proj.weight", d, scale),
                    new LowPrecisionWeight.Part(prefix + ".k_proj.weight", d, 1f),
                    new LowPrecisionWeight.Part(prefix + ".v_proj.weight", d, 1f)));
            NDArray b = bias ? NDArrays.concat(new NDList(w.load(m, prefix + ".q_proj.bias", d).mul(scale),
                    w.load(m, prefix + ".k_proj.bias", d), w.load(m, prefix + ".v_proj.bias", d)), 0) : null; // (3D)
            return new Linear(null, b, qkv.withBias(b));
        }
        Linear q = Linear.load(w, m, prefix + ".q_proj", d, d, bias);
        Linear k = Linear.load(w, m, prefix + ".k_proj", d, d, bias);
        Linear v = Linear.load(w, m, prefix + ".v_proj", d, d, bias);
        NDArray weightT = NDArrays.concat(new NDList(q.weightT().mul(scale), k.weightT(), v.weightT()), 1); // (D, 3D)
        NDArray b = bias ? NDArrays.concat(new NDList(q.bias().mul(scale), k.bias(), v.bias()), 0) : null; // (3D)
        float[] scales = {scale, 1f, 1f};
        w.recordFused(weightT, List.of(q.weightT(), k.weightT(), v.weightT()), 1, scales);
        if (bias) {
            w.recordFused(b, List.of(q.bias(), k.bias(), v.bias()), 0, scales);
        }
        for (Linear part : List.of(q, k, v)) {
            part.weightT().close();
            if (part.bias() != null) {
                part.bias().close();
            }
        }
        return new Linear(weightT, b);
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
    public String decodePath() {
        if (lmHead != null) {
            return (streamedDecode != null ? "java" : "eager") + ", " + lmHead.precision() + " weights ("
                    + LowPrecisionWeight.kernels(lmHead.precision()) + ")";
        }
        if (fusedDecodeLayer == null) {
            return "eager";
        }
        return fusedDecodeLayer.packed() ? "tensorflow-function-packed" : "tensorflow-function";
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
     * One pass of the decoder over T new positions. Activations stay 2-D, [B*T, D], between the layers: every
     * projection is then a plain GEMM, and a single new position (decoding) needs no transposes at all.
     *
     * @param x         inputs_embeds [B, T, W]
     * @param positions position ids [B][T] (the offset of 2 is added here)
     * @param mask      additive mask [B, 1, T, S]
     * @param cache     keys [B, N, H, S - T] and values [B, N, S - T, H] per layer, replaced by the grown ones
     * @return hidden states after the final norm and project_out, [B*T, W]
     */
    NDArray forward(NDArray x, int[][] positions, NDArray mask, KvCache cache) {
        int b = positions.length;
        int t = positions[0].length;
        NDArray h = embed(x, positions);                 // (B*T, D)
        // a low-precision decode step of few rows runs in Java instead: streamedStepLogits, chosen by OptSession.step
        boolean fused = t == 1 && cache.length() > 0 && fusedDecodeLayer != null;
        OptTfDecodeLayer.Step step = fused ? OptTfDecodeLayer.step(x.getManager(), cache) : null; // inputs every layer shares
        for (int i = 0; i < layers.size(); i++) {
            h = fused ? fusedDecodeLayer.forward(step, layers.get(i), h, mask, cache, i) : decoderLayer(layers.get(i), h, b, t, mask, cache, i);
        }
        if (finalLayerNorm != null) {
            h = finalLayerNorm.forward(h);
        }
        if (projectOut != null) {
            h = projectOut.forward(h); // (B*T, W)
        }
        return h;
    }

    /** Whether a decode step of {@code b} rows runs in Java ({@link OptStreamedDecodeLayer}, low precision). */
    boolean streamsStep(int b) {
        return streamedDecode != null && b <= LowPrecisionWeight.STREAM_ROWS;
    }

    /**
     * A decode step's logits, in Java from the embeddings to the LM head ({@link #streamsStep}): the layers, the final
     * norm and the LM head multiply Java arrays, and the logits come back without an engine array between.
     *
     * @param x    inputs_embeds [B, 1, W] of the new tokens
     * @param mask additive [B, 1, 1, S]
     * @return logits [B][V]
     */
    float[][] streamedStepLogits(NDArray x, int[][] positions, NDArray mask, KvCache cache) {
        int b = positions.length;
        float[] h = streamedDecode.forward(layers, embed(x, positions), mask, cache); // (B, D)
        streamedDecode.finalNorm(h, b);
        return lmHead.forwardRows(h, b);                                              // [B][V]
    }

    /** inputs_embeds [B, T, W] through project_in plus the learned positions: h [B*T, D]. */
    private NDArray embed(NDArray x, int[][] positions) {
        NDManager scope = x.getManager();
        int b = positions.length;
        int t = positions[0].length;
        NDArray h = x.reshape((long) b * t, x.getShape().get(2)); // (B*T, W)
        if (projectIn != null) {
            h = projectIn.forward(h); // (B*T, D)
        }
        int[] posIds = new int[b * t];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < t; j++) {
                posIds[i * t + j] = positions[i][j] + OptConfig.POSITION_OFFSET;
            }
        }
        return h.add(embedPositions.lookup(scope, posIds)); // (B*T, D)
    }

    /**
     * Logits at every position of a full causal pass, [B*T, V], in {@code inputsEmbeds}' manager: training and
     * scoring. Positions come from the mask as transformers derives them; gradients flow when the weights were
     * loaded recording (training) and track them.
     *
     * @param inputsEmbeds  [B, T, W]
     * @param attentionMask [B][T], 1 for real tokens, 0 for padding (either side)
     */
    public NDArray logitsOfSequence(NDArray inputsEmbeds, int[][] attentionMask) {
        NDManager scope = inputsEmbeds.getManager();
        int b = attentionMask.length;
        int t = attentionMask[0].length;
        int[][] positions = new int[b][t];
        for (int i = 0; i < b; i++) {
            int n = 0;
            for (int j = 0; j < t; j++) {
                n += attentionMask[i][j];
                positions[i][j] = n * attentionMask[i][j] - 1;
            }
        }
        NDArray mask = Ops.create(scope, AttentionMask.causal(attentionMask, 0, t), b, 1, t, t); // (B, 1, T, T)
        KvCache cache = new KvCache(scope, config.numHiddenLayers()); // its arrays live in the scope
        return logits(forward(inputsEmbeds, positions, mask, cache)); // (B*T, V)
    }

    /** The token embeddings: an array when the weights were loaded recording (training), else null. */
    public EmbeddingTable embedTokens() {
        return embedTokens;
    }

    /** hidden [R, W] to logits [R, V]. */
    NDArray logits(NDArray hidden) {
        if (lmHead != null) {
            return lmHead.forward(hidden);
        }
        if (lmHeadT == null) {
            NDArray tiedT = embedTokens.array().transpose(1, 0); // (W, V), a view tracked by autograd
            tiedT.attach(hidden.getManager());
            return hidden.matMul(tiedT);
        }
        return hidden.matMul(lmHeadT);
    }

    private NDArray decoderLayer(DecoderLayer l, NDArray h, int b, int t, NDArray mask, KvCache cache, int layerIdx) {
        boolean preLn = config.doLayerNormBefore();
        NDArray residual = h;
        if (preLn) {
            h = l.selfAttnLayerNorm().forward(h);
        }
        h = selfAttention(l.selfAttn(), h, b, t, mask, cache, layerIdx).add(residual);
        if (!preLn) {
            h = l.selfAttnLayerNorm().forward(h);
        }
        residual = h;
        if (preLn) {
            h = l.finalLayerNorm().forward(h);
        }
        h = l.fc2().forward(Ops.activation(config.activationFunction(), l.fc1().forward(h))).add(residual); // (B*T, D)
        if (!preLn) {
            h = l.finalLayerNorm().forward(h);
        }
        return h;
    }

    /** h [B*T, D] to the attention output [B*T, D]; the scale is already in the query weights. */
    private NDArray selfAttention(Attention a, NDArray h, int b, int t, NDArray mask, KvCache cache, int layerIdx) {
        int n = config.numAttentionHeads();
        long hd = config.headDim();
        long d = config.hiddenSize();
        NDList qkv = a.qkv().forward(h).split(3, 1); // 3 x (B*T, D)
        NDArray q;
        NDArray kT;
        NDArray v;
        if (t == 1) {
            // one position: splitting the heads is a reshape
            q = qkv.get(0).reshape(b, n, 1, hd);  // (B, N, 1, H)
            kT = qkv.get(1).reshape(b, n, hd, 1); // (B, N, H, 1)
            v = qkv.get(2).reshape(b, n, 1, hd);  // (B, N, 1, H)
        } else {
            q = qkv.get(0).reshape(b, t, n, hd).transpose(0, 2, 1, 3);  // (B, N, T, H)
            kT = qkv.get(1).reshape(b, t, n, hd).transpose(0, 2, 3, 1); // (B, N, H, T)
            v = qkv.get(2).reshape(b, t, n, hd).transpose(0, 2, 1, 3);  // (B, N, T, H)
        }
        cache.append(layerIdx, kT, v);                                               // now (B, N, H, S) and (B, N, S, H)
        NDArray ctx = Ops.attention(q, cache.keysT(layerIdx), cache.values(layerIdx), mask, 1f); // (B, N, T, H)
        NDArray merged = t == 1 ? ctx.reshape(b, d) : ctx.transpose(0, 2, 1, 3).reshape((long) b * t, d); // (B*T, D)
        return a.out().forward(merged);
    }
}
