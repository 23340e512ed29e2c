package io.blip2stream.model.llm.opt;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.llm.KvCache;
import io.blip2stream.model.nn.tf.TfEager;
import io.blip2stream.model.nn.tf.TfGraph;
import io.blip2stream.model.nn.tf.TfGraph.Out;

import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;


/**
 * One OPT decoder layer for one new position per row (a decode step), as a TensorFlow function: the 40-odd ops of
 * the layer run as one call, inside TensorFlow's function runtime, instead of one DJL call each. The function
 * computes what {@link OptForCausalLM}'s eager layer computes, op for op (pre-LN, fused q/k/v with the scale in
 * the query weights, ReLU, biases), for any number of rows and any history length:
 *
 * <pre>
 * in:  h [B, D], mask [B, 1, 1, S], the history in two parts: closed keysT [B, N, H, C], values [B, N, C, H] and
 *      the open block keysT [B, N, H, O], values [B, N, O, H] (C + O = S - 1), the split [C, -1], the layer's
 *      weights, constants
 * out: h [B, D], the open block grown by the new position: keysT [B, N, H, O+1], values [B, N, O+1, H]
 * </pre>
 *
 * The attention runs over both parts at once (one softmax over the concatenated scores), so only the open block
 * is copied to grow (see {@link KvCache}).
 *
 * Only on the TensorFlow engine, and only for the layer shape above (the checkpoints BLIP-2 ships); anything else
 * takes the eager path.
 */
final class OptTfDecodeLayer {
    private static final AtomicInteger NEXT = new AtomicInteger();

    /**
     * Whether the projections run as oneDNN 1x1 convolutions that keep their weights packed (see {@link #build}):
     * {@code true}, {@code false}, or {@code auto} (the default: when the packed copy takes at most a quarter of the
     * machine's memory, as the JVM sees it, container limits included).
     */
    static String packedSetting() {
        return System.getProperty("blip2.tf.packed_weights", System.getenv().getOrDefault("BLIP2_TF_PACKED_WEIGHTS", "auto"))
                .strip().toLowerCase(java.util.Locale.ROOT);
    }

    /** Bytes of one copy of the decoder's projection weights (float32): q/k/v, out, fc1 and fc2 of every layer. */
    static long projectionBytes(OptConfig c) {
        long d = c.hiddenSize();
        long f = c.ffnDim();
        return 4L * c.numHiddenLayers() * (3 * d * d + d * d + 2 * d * f);
    }

    /** Whether to pack for {@code c}, by {@link #packedSetting}. */
    static boolean packFor(OptConfig c) {
        String setting = packedSetting();
        return switch (setting) {
            case "true" -> true;
            case "false" -> false;
            case "auto" -> projectionBytes(c) <= totalMemory() / 4;
            default -> throw new IllegalArgumentException("BLIP2_TF_PACKED_WEIGHTS (blip2.tf.packed_weights) must be true, false or auto, not " + setting);
        };
    }

    private static long totalMemory() {
        var os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean sun ? sun.getTotalMemorySize() : 0;
    }

    private static final int LAYER_INPUTS = 19; // the inputs before the constants: activations, history, weights
    private final boolean packed;
    private final String[] names;      // one function for all layers, or one per layer when the weights are packed
    private final NDArray[] constants; // eps, -1, 1, 2, 3 (int32), query shape, key shape, merged shape (int64), then
                                       // packed: the 1x1-convolution shapes (int64)

    private OptTfDecodeLayer(boolean packed, String[] names, NDArray[] constants) {
        this.packed = packed;
        this.names = names;
        this.constants = constants;
    }

    /** Whether the projections keep packed copies of their weights (one function per layer). */
    boolean packed() {
        return packed;
    }

    /** Whether the fused layer applies: TensorFlow, pre-LN with affine norms and biases, ReLU. */
    static boolean applies(NDManager m, OptConfig c) {
        return "TensorFlow".equals(m.getEngine().getEngineName()) && c.doLayerNormBefore() && c.layerNormElementwiseAffine()
                && c.enableBias() && "relu".equals(c.activationFunction());
    }

    /**
     * Builds and registers the function(s) with the engine of {@code m}; the constants live in {@code m}.
     *
     * <p>Packed (the default where TensorFlow runs oneDNN): each projection is a 1x1 convolution over the rows, run by
     * oneDNN's convolution kernel marked {@code is_filter_const}, which reorders its weights into oneDNN's blocked
     * layout on its first call and keeps them. TensorFlow's {@code MatMul} packs the weights again on every call, and
     * at a few rows that packing streams them at about half the rate of a one-row GEMV (load-tests/results/
     * 2026-11-28-decode-breakdown.md); packed, 8 rows cost about what 1 row does. The kept copy is per kernel, so every
     * layer gets a function of its own, always called with the same weights; it costs one more copy of the decoder's
     * projection weights in memory (340 MB for OPT-125m, 10.1 GB for OPT-2.7b), so by default it is on only where that
     * copy takes at most a quarter of the memory ({@code BLIP2_TF_PACKED_WEIGHTS} or {@code -Dblip2.tf.packed_weights}:
     * {@code true}, {@code false}, {@code auto}).
     */
    static OptTfDecodeLayer build(NDManager m, OptConfig c) {
        boolean packed = packFor(c) && packedConvolutionRuns(m);
        String[] names = new String[packed ? c.numHiddenLayers() : 1];
        for (int i = 0; i < names.length; i++) {
            names[i] = build(m, c, packed);
        }
        int n = c.numAttentionHeads();
        long h = c.headDim();
        long d = c.hiddenSize();
        long f = c.ffnDim();
        NDArray[] common = {
            m.create((float) OptConfig.LAYER_NORM_EPS), m.create(-1), m.create(1), m.create(2), m.create(3),
            m.create(new long[] {-1, n, 1, h}), m.create(new long[] {-1, n, h, 1}), m.create(new long[] {-1, d})
        };
        if (!packed) {
            return new OptTfDecodeLayer(false, names, common);
        }
        NDArray[] conv = {
            m.create(new long[] {1, 1, -1, d}), m.create(new long[] {1, 1, -1, f}),             // rows as a 1x1 image
            m.create(new long[] {1, 1, d, 3 * d}), m.create(new long[] {1, 1, d, d}),           // filters
            m.create(new long[] {1, 1, d, f}), m.create(new long[] {1, 1, f, d}),
            m.create(new long[] {-1, 3 * d}), m.create(new long[] {-1, f})                      // back to rows
        };
        NDArray[] all = java.util.Arrays.copyOf(common, common.length + conv.length);
        System.arraycopy(conv, 0, all, common.length, conv.length);
        return new OptTfDecodeLayer(true, names, all);
    }

    /**
     * Whether this TensorFlow runs oneDNN's convolution kernel as {@link #conv1x1} calls it (a build without oneDNN,
     * or with {@code TF_ENABLE_ONEDNN_OPTS=0}, may not): a 2 x 3 @ 3 x 2 product through it, checked.
     */
    private static boolean packedConvolutionRuns(NDManager m) {
        String name = "blip2_packed_probe_" + NEXT.incrementAndGet();
        try (NDManager scope = m.newSubManager()) {
            try (TfGraph g = new TfGraph()) {
                Out x = g.input(TfGraph.FLOAT);
                Out w = g.input(TfGraph.FLOAT);
                g.register(scope, name, conv1x1(g, x, w, g.input(TfGraph.INT64), g.input(TfGraph.INT64), g.input(TfGraph.INT64)));
            }
            NDArray[] out = TfEager.call(scope, name, new NDArray[] {
                scope.create(new float[] {1, 2, 3, 4, 5, 6}, new Shape(2, 3)), scope.create(new float[] {1, 0, 0, 1, 1, 1}, new Shape(3, 2)),
                scope.create(new long[] {1, 1, -1, 3}), scope.create(new long[] {1, 1, 3, 2}), scope.create(new long[] {-1, 2})
            }, 1);
            return java.util.Arrays.equals(out[0].toFloatArray(), new float[] {4, 5, 10, 11});
        } catch (RuntimeException e) {
            return false;
        }
    }

    private static String build(NDManager m, OptConfig c, boolean packed) {
        String name = "blip2_opt_decode_layer_" + NEXT.incrementAndGet();
        try (TfGraph g = new TfGraph()) {
            Out x = g.input(TfGraph.FLOAT);         // (B, D)
            Out mask = g.input(TfGraph.FLOAT);      // (B, 1, 1, S)
            Out pastK = g.input(TfGraph.FLOAT);     // (B, N, H, C)
            Out pastV = g.input(TfGraph.FLOAT);     // (B, N, C, H)
            Out openK = g.input(TfGraph.FLOAT);     // (B, N, H, O)
            Out openV = g.input(TfGraph.FLOAT);     // (B, N, O, H)
            Out split = g.input(TfGraph.INT32);     // [C, -1]
            Out ln1g = g.input(TfGraph.FLOAT);
            Out ln1b = g.input(TfGraph.FLOAT);
            Out wQkv = g.input(TfGraph.FLOAT);      // (D, 3D)
            Out bQkv = g.input(TfGraph.FLOAT);
            Out wO = g.input(TfGraph.FLOAT);        // (D, D)
            Out bO = g.input(TfGraph.FLOAT);
            Out ln2g = g.input(TfGraph.FLOAT);
            Out ln2b = g.input(TfGraph.FLOAT);
            Out w1 = g.input(TfGraph.FLOAT);        // (D, F)
            Out b1 = g.input(TfGraph.FLOAT);
            Out w2 = g.input(TfGraph.FLOAT);        // (F, D)
            Out b2 = g.input(TfGraph.FLOAT);
            Out eps = g.input(TfGraph.FLOAT);
            Out last = g.input(TfGraph.INT32);
            Out one = g.input(TfGraph.INT32);
            Out two = g.input(TfGraph.INT32);
            Out three = g.input(TfGraph.INT32);
            Out qShape = g.input(TfGraph.INT64);    // (-1, N, 1, H)
            Out kShape = g.input(TfGraph.INT64);    // (-1, N, H, 1)
            Out mShape = g.input(TfGraph.INT64);    // (-1, D)
            Out[] cs = new Out[8];                  // packed: the 1x1-convolution shapes, in build's order; else none
            for (int i = 0; packed && i < cs.length; i++) {
                cs[i] = g.input(TfGraph.INT64);
            }

            // self_attn_layer_norm, as Ops.layerNorm
            Out a = layerNorm(g, x, ln1g, ln1b, eps, last);
            Out qkv = g.op("BiasAdd", project(g, a, wQkv, cs[0], cs[2], cs[6]), bQkv);                 // (B, 3D)
            Out[] a3 = attention(g, qkv, mask, pastK, pastV, openK, openV, split, one, two, three, qShape, kShape, mShape);
            Out keys = a3[1];
            Out values = a3[2];
            Out attn = g.op("BiasAdd", project(g, a3[0], wO, cs[0], cs[3], mShape), bO);         // (B, D)
            Out h1 = g.op("AddV2", attn, x);
            // final_layer_norm, fc1, ReLU, fc2, residual
            Out f = layerNorm(g, h1, ln2g, ln2b, eps, last);
            f = g.op("Relu", g.op("BiasAdd", project(g, f, w1, cs[0], cs[4], cs[7]), b1));            // (B, F)
            Out h2 = g.op("AddV2", g.op("BiasAdd", project(g, f, w2, cs[1], cs[5], mShape), b2), h1);  // (B, D)
            g.register(m, name, h2, keys, values);
        }
        return name;
    }

    /**
     * The attention of one new position per row over the cached history and itself: qkv [B, 3D] (the query already
     * scaled) to the merged context [B, D], and the open block grown by the new key and value (see {@link #build}).
     */
    static Out[] attention(TfGraph g, Out qkv, Out mask, Out pastK, Out pastV, Out openK, Out openV, Out split,
                           Out one, Out two, Out three, Out qShape, Out kShape, Out mShape) {
        Out[] parts = g.opOutputs("Split", a -> a.integer("num_split", 3), 3, one, qkv);
        Out q = g.op("Reshape", parts[0], qShape);                                         // (B, N, 1, H)
        Out k = g.op("Reshape", parts[1], kShape);                                         // (B, N, H, 1)
        Out v = g.op("Reshape", parts[2], qShape);                                         // (B, N, 1, H)
        Out keys = g.op("ConcatV2", List.of(openK, k), three);                             // (B, N, H, O+1)
        Out values = g.op("ConcatV2", List.of(openV, v), two);                             // (B, N, O+1, H)
        Out scores = g.op("AddV2", g.op("ConcatV2",
                List.of(g.op("BatchMatMulV2", q, pastK), g.op("BatchMatMulV2", q, keys)), three), mask); // (B, N, 1, S)
        Out[] p = g.opOutputs("SplitV", a -> a.integer("num_split", 2), 2,
                g.op("Softmax", scores), split, three);                                    // (B, N, 1, C), (B, N, 1, O+1)
        Out ctx = g.op("AddV2", g.op("BatchMatMulV2", p[0], pastV), g.op("BatchMatMulV2", p[1], values)); // (B, N, 1, H)
        return new Out[] {g.op("Reshape", ctx, mShape), keys, values};                     // (B, D), keys, values
    }

    /** x [R, K] @ w [K, N]: a MatMul, or with the convolution's shapes given, {@link #conv1x1}. */
    private static Out project(TfGraph g, Out x, Out w, Out imageShape, Out filterShape, Out outShape) {
        return imageShape == null ? g.op("MatMul", x, w) : conv1x1(g, x, w, imageShape, filterShape, outShape);
    }

    /** x [R, K] @ w [K, N] as oneDNN's 1x1 convolution with a kept, packed filter; [R, N]. */
    private static Out conv1x1(TfGraph g, Out x, Out w, Out imageShape, Out filterShape, Out outShape) {
        Out image = g.op("Reshape", x, imageShape);                                            // (1, 1, R, K)
        Out y = g.opWith("_MklNativeConv2D", desc -> {
            desc.integers("strides", 1, 1, 1, 1).string("padding", "VALID").bool("is_filter_const", true)
                    .string("_kernel", "MklNameChangeOp");
        }, image, g.op("Reshape", w, filterShape));                                            // (1, 1, R, N)
        return g.op("Reshape", y, outShape);                                                  // (R, N)
    }

    /** mean, centre, variance, divide by sqrt(var + eps), scale and shift: Ops.layerNorm's ops in its order. */
    private static Out layerNorm(TfGraph g, Out x, Out gamma, Out beta, Out eps, Out last) {
        Out mean = g.opWith("Mean", a -> a.bool("keep_dims", true), x, last);
        Out centred = g.op("Sub", x, mean);
        Out var = g.opWith("Mean", a -> a.bool("keep_dims", true), g.op("Mul", centred, centred), last);
        Out y = g.op("RealDiv", centred, g.op("Sqrt", g.op("AddV2", var, eps)));
        return g.op("AddV2", g.op("Mul", y, gamma), beta);
    }

    /**
     * What every layer of one decode step shares: the split of the softmax between the closed history and the
     * open block, and empty blocks for layers whose open block was just merged (every layer's history has the
     * same shape, so layer 0 stands for all).
     */
    record Step(NDArray split, NDArray emptyKeysT, NDArray emptyValues) {}

    static Step step(NDManager scope, KvCache cache) {
        Shape k = cache.closedKeysT(0).getShape(); // (B, N, H, C)
        NDArray split = scope.create(new int[] {(int) k.get(3), -1});
        if (cache.openKeysT(0) != null) {
            return new Step(split, null, null);
        }
        return new Step(split, scope.create(new float[0], new Shape(k.get(0), k.get(1), k.get(2), 0)),
                scope.create(new float[0], new Shape(k.get(0), k.get(1), 0, k.get(2))));
    }

    /**
     * Runs layer {@code layerIdx} on h [B, D] for one new position per row; the cache grows by that position.
     *
     * @param mask additive [B, 1, 1, S]
     */
    NDArray forward(Step step, OptForCausalLM.DecoderLayer l, NDArray x, NDArray mask, KvCache cache, int layerIdx) {
        NDArray openK = cache.openKeysT(layerIdx);
        NDArray openV = cache.openValues(layerIdx);
        if (openK == null) {
            openK = step.emptyKeysT();
            openV = step.emptyValues();
        }
        NDArray[] in = new NDArray[LAYER_INPUTS + constants.length];
        NDArray[] layer = {
            x, mask, cache.closedKeysT(layerIdx), cache.closedValues(layerIdx), openK, openV, step.split(),
            l.selfAttnLayerNorm().weight(), l.selfAttnLayerNorm().bias(), l.selfAttn().qkv().weightT(), l.selfAttn().qkv().bias(),
            l.selfAttn().out().weightT(), l.selfAttn().out().bias(),
            l.finalLayerNorm().weight(), l.finalLayerNorm().bias(), l.fc1().weightT(), l.fc1().bias(), l.fc2().weightT(), l.fc2().bias()
        };
        System.arraycopy(layer, 0, in, 0, LAYER_INPUTS);
        System.arraycopy(constants, 0, in, LAYER_INPUTS, constants.length);
        NDArray[] out = TfEager.call(x.getManager(), names[packed ? layerIdx : 0], in, 3);
        cache.setOpen(layerIdx, out[1], out[2]);
        return out[0];
    }
}
