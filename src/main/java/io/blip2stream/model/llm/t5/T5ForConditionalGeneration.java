package io.blip2stream.model.llm.t5;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.blip2stream.model.config.T5Config;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.llm.LanguageModel;
import io.blip2stream.model.nn.AttentionMask;
import io.blip2stream.model.nn.EmbeddingTable;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.weights.Weights;

import java.util.ArrayList;
import java.util.List;

/**
 * T5 v1.1 / FlanT5 as BLIP-2's language model (transformers' {@code T5ForConditionalGeneration}): RMS layer
 * norms, relative position buckets (bidirectional in the encoder, causal in the decoder) whose bias comes from
 * each stack's first layer and is shared by the stack, attention without score scaling, a gated feed-forward,
 * and an LM head tied to the shared embeddings or separate ({@code tie_word_embeddings}), with the decoder
 * output scaled by {@code d_model^-0.5} when {@code scale_decoder_outputs} says so.
 *
 * <p>Dimensions: B batch, L encoder length, T new decoder positions, S decoder positions so far, D d_model,
 * N heads, K d_kv, I = N*K, F d_ff, V vocabulary, R relative-attention buckets.
 */
public final class T5ForConditionalGeneration implements LanguageModel {

    /** T5Attention (no biases). */
    record Attention(Linear q, Linear k, Linear v, Linear o) {}

    /** T5DenseGatedActDense, or T5DenseActDense when wi1 is null. */
    record FeedForward(Linear wi0, Linear wi1, Linear wo) {}

    /** T5Block of the encoder: self-attention, feed-forward, each after an RMS norm (weights [D]). */
    record EncoderBlock(NDArray selfLn, Attention self, NDArray ffLn, FeedForward ff) {}

    /** T5Block of the decoder: self-attention, cross-attention to the encoder, feed-forward. */
    record DecoderBlock(NDArray selfLn, Attention self, NDArray crossLn, Attention cross, NDArray ffLn, FeedForward ff) {}

    private final T5Config config;
    private final NDManager manager;
    final EmbeddingTable shared;         // (V, D)
    private final EmbeddingTable encoderBias; // (R, N)
    private final EmbeddingTable decoderBias; // (R, N)
    private final List<EncoderBlock> encoder;
    private final NDArray encoderFinalLn;
    final List<DecoderBlock> decoder;
    private final NDArray decoderFinalLn;
    private final Linear lmHead;         // (D -> V): float32 [D, V], or bfloat16 / int8 [V, D] like the other layers

    private T5ForConditionalGeneration(T5Config config, NDManager manager, EmbeddingTable shared, EmbeddingTable encoderBias,
                                       EmbeddingTable decoderBias, List<EncoderBlock> encoder, NDArray encoderFinalLn,
                                       List<DecoderBlock> decoder, NDArray decoderFinalLn, Linear lmHead) {
        this.config = config;
        this.manager = manager;
        this.shared = shared;
        this.encoderBias = encoderBias;
        this.decoderBias = decoderBias;
        this.encoder = encoder;
        this.encoderFinalLn = encoderFinalLn;
        this.decoder = decoder;
        this.decoderFinalLn = decoderFinalLn;
        this.lmHead = lmHead;
    }

    /** @param prefix {@code language_model} in BLIP-2 checkpoints */
    public static T5ForConditionalGeneration load(Weights w, NDManager m, T5Config c, String prefix) {
        long d = c.dModel();
        long inner = c.innerDim();
        EmbeddingTable shared = EmbeddingTable.load(w, m, prefix + ".shared.weight", c.vocabSize(), d);
        List<EncoderBlock> enc = new ArrayList<>();
        for (int i = 0; i < c.numLayers(); i++) {
            String b = prefix + ".encoder.block." + i + ".layer.";
            enc.add(new EncoderBlock(
                    w.load(m, b + "0.layer_norm.weight", d), attention(w, m, b + "0.SelfAttention", d, inner),
                    w.load(m, b + "1.layer_norm.weight", d), feedForward(w, m, b + "1.DenseReluDense", c)));
        }
        List<DecoderBlock> dec = new ArrayList<>();
        for (int i = 0; i < c.numDecoderLayers(); i++) {
            String b = prefix + ".decoder.block." + i + ".layer.";
            dec.add(new DecoderBlock(
                    w.load(m, b + "0.layer_norm.weight", d), attention(w, m, b + "0.SelfAttention", d, inner),
                    w.load(m, b + "1.layer_norm.weight", d), attention(w, m, b + "1.EncDecAttention", d, inner),
                    w.load(m, b + "2.layer_norm.weight", d), feedForward(w, m, b + "2.DenseReluDense", c)));
        }
        String bias = ".block.0.layer.0.SelfAttention.relative_attention_bias.weight";
        String head = !c.tieWordEmbeddings() && w.contains(prefix + ".lm_head.weight")
                ? prefix + ".lm_head" : prefix + ".shared"; // tied: the head reads the shared embeddings' [V, D]
        return new T5ForConditionalGeneration(c, m, shared,
                EmbeddingTable.load(w, m, prefix + ".encoder" + bias, c.relativeAttentionNumBuckets(), c.numHeads()),
                EmbeddingTable.load(w, m, prefix + ".decoder" + bias, c.relativeAttentionNumBuckets(), c.numHeads()),
                enc, w.load(m, prefix + ".encoder.final_layer_norm.weight", d),
                dec, w.load(m, prefix + ".decoder.final_layer_norm.weight", d),
                Linear.load(w, m, head, d, c.vocabSize(), false));
    }

    private static Attention attention(Weights w, NDManager m, String p, long d, long inner) {
        return new Attention(Linear.load(w, m, p + ".q", d, inner, false), Linear.load(w, m, p + ".k", d, inner, false),
                Linear.load(w, m, p + ".v", d, inner, false), Linear.load(w, m, p + ".o", inner, d, false));
    }

    private static FeedForward feedForward(Weights w, NDManager m, String p, T5Config c) {
        if (c.gatedAct()) {
            return new FeedForward(Linear.load(w, m, p + ".wi_0", c.dModel(), c.dFf(), false),
                    Linear.load(w, m, p + ".wi_1", c.dModel(), c.dFf(), false), Linear.load(w, m, p + ".wo", c.dFf(), c.dModel(), false));
        }
        return new FeedForward(Linear.load(w, m, p + ".wi", c.dModel(), c.dFf(), false), null,
                Linear.load(w, m, p + ".wo", c.dFf(), c.dModel(), false));
    }

    @Override
    public T5Config config() {
        return config;
    }

    NDManager manager() {
        return manager;
    }

    @Override
    public int inputWidth() {
        return config.dModel();
    }

    @Override
    public int hiddenSize() {
        return config.dModel();
    }

    @Override
    public void embedToken(int id, float[] dst, int offset) {
        shared.copyRow(id, dst, offset);
    }

    @Override
    public int maxPositions() {
        return Integer.MAX_VALUE;
    }

    @Override
    public int[] decoderPrompt() {
        return new int[] {config.decoderStartTokenId()};
    }

    @Override
    public DecoderSession start(float[] inputsEmbeds, int[][] attentionMask) {
        return new T5Session(this, manager.newSubManager(), inputsEmbeds, attentionMask);
    }

    @Override
    public float[][] fullLogits(float[] inputsEmbeds, int[] attentionMask, int[] decoderIds) {
        try (T5Session s = new T5Session(this, manager.newSubManager(), inputsEmbeds, new int[][] {attentionMask}, false)) {
            int[] ids = new int[decoderIds.length + 1];
            ids[0] = config.decoderStartTokenId();
            System.arraycopy(decoderIds, 0, ids, 1, decoderIds.length);
            return s.decodeAll(ids);
        }
    }

    // ---- the stacks

    /** RMS norm of T5LayerNorm. */
    NDArray norm(NDArray x, NDArray weight) {
        return Ops.rmsNorm(x, weight, (float) config.layerNormEpsilon());
    }

    /** The encoder over inputs_embeds [B, L, D] with the additive mask [B, 1, 1, L]: hidden states [B, L, D]. */
    NDArray encode(NDArray x, NDArray mask) {
        int l = (int) x.getShape().get(1);
        NDArray bias = positionBias(x.getManager(), encoderBias, l, 0, l, true).add(mask); // (B, N, L, L)
        for (EncoderBlock b : encoder) {
            NDArray h = norm(x, b.selfLn());
            x = x.add(selfAttention(b.self(), h, bias));
            x = x.add(feedForward(b.ff(), norm(x, b.ffLn())));
        }
        return norm(x, encoderFinalLn);
    }

    private NDArray selfAttention(Attention a, NDArray h, NDArray bias) {
        int n = config.numHeads();
        NDArray q = Ops.splitHeads(a.q().forward(h), n);            // (B, N, L, K)
        NDArray kT = Ops.splitHeadsTransposed(a.k().forward(h), n); // (B, N, K, L)
        NDArray v = Ops.splitHeads(a.v().forward(h), n);            // (B, N, L, K)
        return a.o().forward(Ops.mergeHeads(Ops.attention(q, kT, v, bias, 1f))); // no scaling in T5
    }

    NDArray feedForward(FeedForward f, NDArray h) {
        NDArray act = Ops.activation(config.denseActFn(), f.wi0().forward(h)); // (B, T, F)
        if (f.wi1() != null) {
            act = act.mul(f.wi1().forward(h));
        }
        return f.wo().forward(act);
    }

    /**
     * One pass of the decoder over T new positions after {@code past} cached ones.
     *
     * @param x          decoder input embeddings [B, T, D]
     * @param selfCache  self-attention keys and values, grown by T
     * @param cross      the encoder's keys and values per layer, computed once per request
     * @param crossMask  the encoder's additive mask [B, 1, 1, L]
     * @param selfMask   the decoder's additive padding mask [B, 1, 1, S], or null when no row is padded
     * @return logits [B, T, V]
     */
    NDArray decode(NDArray x, int past, KvCache selfCache, KvCache cross, NDArray crossMask, NDArray selfMask) {
        int t = (int) x.getShape().get(1);
        int n = config.numHeads();
        NDArray selfBias;
        if (decoderBias.array() == null) {
            float[] bias = positionBias(decoderBias, t, past, past + t, false);
            for (int q = 0; q < t; q++) { // causal
                for (int k = past + q + 1; k < past + t; k++) {
                    for (int h = 0; h < n; h++) {
                        bias[(h * t + q) * (past + t) + k] = AttentionMask.MASKED;
                    }
                }
            }
            selfBias = Ops.create(x.getManager(), bias, 1, n, t, past + t); // (1, N, T, S)
        } else { // training: the bias gathered from its table, the causal mask added
            float[] causal = new float[t * (past + t)];
            for (int q = 0; q < t; q++) {
                for (int k = past + q + 1; k < past + t; k++) {
                    causal[q * (past + t) + k] = AttentionMask.MASKED;
                }
            }
            selfBias = positionBias(x.getManager(), decoderBias, t, past, past + t, false)
                    .add(Ops.create(x.getManager(), causal, 1, 1, t, past + t)); // (1, N, T, S)
        }
        if (selfMask != null) {
            selfBias = selfBias.add(selfMask); // (B, N, T, S)
        }
        for (int i = 0; i < decoder.size(); i++) {
            DecoderBlock b = decoder.get(i);
            NDArray h = norm(x, b.selfLn());
            NDArray q = Ops.splitHeads(b.self().q().forward(h), n);                       // (B, N, T, K)
            selfCache.append(i, Ops.splitHeadsTransposed(b.self().k().forward(h), n),
                    Ops.splitHeads(b.self().v().forward(h), n));                           // (B, N, K, S), (B, N, S, K)
            NDArray ctx = Ops.attention(q, selfCache.keysT(i), selfCache.values(i), selfBias, 1f);
            x = x.add(b.self().o().forward(Ops.mergeHeads(ctx)));
            h = norm(x, b.crossLn());
            NDArray cq = Ops.splitHeads(b.cross().q().forward(h), n);                     // (B, N, T, K)
            ctx = Ops.attention(cq, cross.keysT(i), cross.values(i), crossMask, 1f);      // over (B, N, K, L)
            x = x.add(b.cross().o().forward(Ops.mergeHeads(ctx)));
            x = x.add(feedForward(b.ff(), norm(x, b.ffLn())));
        }
        x = norm(x, decoderFinalLn);
        if (config.scaleDecoderOutputs()) {
            x = x.mul((float) Math.pow(config.dModel(), -0.5));
        }
        return lmHead.forward(x); // (B, T, V)
    }

    /** The encoder's keys and values for every decoder layer's cross-attention. */
    void crossKeysValues(NDArray encoderOut, KvCache cross) {
        int n = config.numHeads();
        for (int i = 0; i < decoder.size(); i++) {
            Attention a = decoder.get(i).cross();
            cross.append(i, Ops.splitHeadsTransposed(a.k().forward(encoderOut), n), Ops.splitHeads(a.v().forward(encoderOut), n));
        }
    }

    /**
     * Logits at every decoder position of a full teacher-forced pass, [B*T, V], in {@code inputsEmbeds}' manager:
     * training. The encoder reads the inputs (the visual prompt and the prompt's tokens, or text alone) under their
     * padding mask; the decoder reads {@code decoderIds} (the decoder start token, then the target shifted right)
     * causally, padded on the right. Gradients flow when the weights were loaded recording and track them.
     *
     * @param inputsEmbeds [B, L, D]
     * @param encoderMask  [B][L], 1 for real positions, 0 for padding
     * @param decoderIds   [B][T] decoder input ids
     * @param decoderMask  [B][T], 1 for real tokens, 0 for padding after them
     */
    public NDArray logitsOfSequence(NDArray inputsEmbeds, int[][] encoderMask, int[][] decoderIds, int[][] decoderMask) {
        NDManager scope = inputsEmbeds.getManager();
        int b = encoderMask.length;
        int l = encoderMask[0].length;
        int t = decoderIds[0].length;
        NDArray crossMask = Ops.create(scope, AttentionMask.padding(encoderMask, 0), b, 1, 1, l); // (B, 1, 1, L)
        NDArray encoded = encode(inputsEmbeds, crossMask);                                       // (B, L, D)
        KvCache cross = new KvCache(scope, decoder.size()); // its arrays live in the scope
        crossKeysValues(encoded, cross);
        int[] flat = new int[b * t];
        for (int i = 0; i < b; i++) {
            System.arraycopy(decoderIds[i], 0, flat, i * t, t);
        }
        NDArray x = shared.lookup(scope, flat).reshape(b, t, config.dModel());                   // (B, T, D)
        NDArray selfMask = Ops.create(scope, AttentionMask.padding(decoderMask, 0), b, 1, 1, t);  // (B, 1, 1, T)
        NDArray logits = decode(x, 0, new KvCache(scope, decoder.size()), cross, crossMask, selfMask); // (B, T, V)
        return logits.reshape((long) b * t, config.vocabSize());
    }

    /** The shared token embeddings: an array when the weights were loaded recording (training). */
    public EmbeddingTable shared() {
        return shared;
    }

    /**
     * The relative position bias [1, N, T, S] in {@code scope}: gathered from the table when it is an array
     * (training: gradients reach it), else built in Java ({@link #positionBias(EmbeddingTable, int, int, int, boolean)}).
     */
    NDArray positionBias(NDManager scope, EmbeddingTable table, int t, int first, int s, boolean bidirectional) {
        int n = config.numHeads();
        if (table.array() == null) {
            return Ops.create(scope, positionBias(table, t, first, s, bidirectional), 1, n, t, s);
        }
        int[] buckets = new int[t * s];
        for (int q = 0; q < t; q++) {
            for (int k = 0; k < s; k++) {
                buckets[q * s + k] = relativePositionBucket(k - (first + q), bidirectional, config.relativeAttentionNumBuckets(),
                        config.relativeAttentionMaxDistance());
            }
        }
        return table.lookup(scope, buckets).reshape(t, s, n).transpose(2, 0, 1).reshape(1, n, t, s); // (1, N, T, S)
    }

    /**
     * The relative position bias [N, T, S] (flattened) for queries at positions {@code first..first+T-1} and keys
     * at {@code 0..S-1}: T5Attention.compute_bias.
     */
    float[] positionBias(EmbeddingTable table, int t, int first, int s, boolean bidirectional) {
        int n = config.numHeads();
        float[] out = new float[n * t * s];
        float[] row = new float[n];
        for (int q = 0; q < t; q++) {
            for (int k = 0; k < s; k++) {
                int bucket = relativePositionBucket(k - (first + q), bidirectional, config.relativeAttentionNumBuckets(),
                        config.relativeAttentionMaxDistance());
                table.copyRow(bucket, row, 0);
                for (int h = 0; h < n; h++) {
                    out[(h * t + q) * s + k] = row[h];
                }
            }
        }
        return out;
    }

    /**
     * T5Attention._relative_position_bucket, in the float32 arithmetic transformers uses for the logarithmic
     * buckets, so that the truncation lands where it does there.
     */
    static int relativePositionBucket(int relativePosition, boolean bidirectional, int numBuckets, int maxDistance) {
        int buckets = 0;
        int n = numBuckets;
        int rp = relativePosition;
        if (bidirectional) {
            n /= 2;
            if (rp > 0) {
                buckets += n;
            }
            rp = Math.abs(rp);
        } else {
            rp = -Math.min(rp, 0);
        }
        int maxExact = n / 2;
        if (rp < maxExact) {
            return buckets + rp;
        }
        float ratio = (float) rp / (float) maxExact;
        float logRatio = (float) Math.log(ratio);
        float scaled = logRatio / (float) Math.log((double) maxDistance / maxExact) * (float) (n - maxExact);
        int large = Math.min(maxExact + (int) scaled, n - 1);
        return buckets + large;
    }
}
