package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.nn.tf.LowPrecisionGemm;
import io.blip2stream.model.nn.tf.TfEager;
import io.blip2stream.model.weights.DirectBuffers;
import io.blip2stream.model.weights.Precision;
import io.blip2stream.model.weights.Weights;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;


/**
 * A Linear layer's weight [out, in] kept in bfloat16 or int8, in one copy outside the JVM's heap and direct-memory
 * limit, laid out for whichever side multiplies it. Which one is decided here, in {@link #load}, for every device:
 *
 * <ul>
 *   <li>packed (bfloat16 or int8 on a CPU where oneDNN has a bfloat16 kernel): {@link OneDnnWeight}, oneDNN's own
 *       blocked layout, multiplied with the CPU's bfloat16 dot-product instructions for any number of rows (int8
 *       widened on the way; one row of int8 read in place from Java, {@link WeightStreaming#multiplyPackedInt8}).</li>
 *   <li>streamed (int8 on a CPU without oneDNN or with a group size set; bfloat16 on a CPU without oneDNN, for the
 *       language model, the Q-Former and the projections): a TensorFlow array in {@link WeightStreaming}'s blocked layout, read in place from Java for
 *       up to {@link #STREAM_ROWS} rows; more rows go to TensorFlow with x's columns gathered into that order.</li>
 *   <li>engine (bfloat16 on a GPU; on a CPU without oneDNN, the vision encoder's, {@link Weights#forManyRows}): a
 *       TensorFlow array as stored, [out, in], multiplied inside TensorFlow.</li>
 * </ul>
 *
 * bfloat16 is the weight rounded to nearest even (a bfloat16 checkpoint's values as they are), held as bytes (DJL's
 * TensorFlow arrays have no bfloat16 type) and bit-cast inside the engine; int8 is symmetric, values in [-127, 127],
 * with one float32 scale ({@code max |w| / 127}) per output when packed, per group of 64 values of a row when
 * streamed ({@link #int8Group}), and on the CPU only. Only on the TensorFlow engine (DJL's PyTorch engine aborts the process on any bfloat16 array).
 */
public final class LowPrecisionWeight {
    /** Rows a decode step has at most for the streamed decode path ({@code OptStreamedDecodeLayer}). */
    public static final int STREAM_ROWS = 8;

    /** Values per int8 scale unless {@code BLIP2_INT8_GROUP} says otherwise (see {@link #int8Group}). */
    static final int DEFAULT_INT8_GROUP = 64;

    /** One tensor (rows [rows, in]) of the weight, multiplied by {@code scale} (a fused query scale; 1 otherwise). */
    public record Part(String name, long rows, float scale) {}

    private final Precision precision;
    private final boolean streamed;
    private final int out;
    private final int in;
    private final int stride;          // streamed: in padded to whole blocks; else in
    private final int group;           // int8: values per scale; else 0
    private final NDArray data;        // int8 [out, stride], or bfloat16 bits [out, stride, 2], in the engine
    private final float[] scaleValues; // int8: [out, stride / group]; else null
    private final NDArray scales;      // int8: the same [out, stride / group, 1] in the engine; else null
    private final NDArray[] shapes;    // int8: int64 [out, groups, group] and [out, stride], for widening; else null
    private final NDArray columns;     // streamed: int32 [stride], the column of x each stored column multiplies (in: zero)
    private final ByteBuffer view;     // streamed: data's memory, read in place; else null
    private final OneDnnWeight packed; // packed: the only copy; else null
    private final NDArray bias;        // [out] or null
    private final float[] biasValues;  // the same in Java, or null
    private final ByteBuffer biasBuffer; // packed: the same for oneDNN's epilogue, native order; else null

    private LowPrecisionWeight(Precision precision, boolean streamed, int out, int in, int stride, int group, NDArray data,
                               float[] scaleValues, NDArray scales, NDArray[] shapes, NDArray columns, ByteBuffer view,
                               OneDnnWeight packed, NDArray bias, float[] biasValues) {
        this.precision = precision;
        this.streamed = streamed;
        this.out = out;
        this.in = in;
        this.stride = stride;
        this.group = group;
        this.data = data;
        this.scaleValues = scaleValues;
        this.scales = scales;
        this.shapes = shapes;
        this.columns = columns;
        this.view = view;
        this.packed = packed;
        this.bias = bias;
        this.biasValues = biasValues;
        this.biasBuffer = packed != null && biasValues != null ? OneDnn.floats(biasValues) : null;
    }

    /**
     * Loads one or more tensors [rows_i, in] stacked along the output axis (q, k and v as one projection) as one
     * weight [sum rows_i, in] in {@code precision}, converted row by row straight from the mapped checkpoint (no float32
     * copy of a tensor is made) into a staging buffer the engine copies and that is released at once.
     */
    public static LowPrecisionWeight load(Weights w, NDManager m, Precision precision, long in, List<Part> parts) {
        if (precision == Precision.FLOAT32) {
            throw new IllegalArgumentException("float32 weights are engine arrays (Linear.load)");
        }
        if (!"TensorFlow".equals(m.getEngine().getEngineName())) {
            throw new IllegalArgumentException("dtype " + precision + " runs on the TensorFlow engine only (DJL's PyTorch "
                    + "engine has no bfloat16 arrays): use --engine tensorflow, or --dtype float32 on PyTorch");
        }
        boolean int8 = precision == Precision.INT8;
        boolean cpu = !m.getDevice().isGpu(); // streaming reads the engine's memory in place: a CPU array's only
        if (int8 && !cpu) {
            throw new IllegalArgumentException("dtype int8 runs on the CPU only (its products are streamed from host memory): "
                    + "use --dtype bfloat16 on " + m.getDevice());
        }
        // int8 is packed for oneDNN with one scale per output where its int8 kernel runs (a group size set in
        // BLIP2_INT8_GROUP keeps the streamed layout, whose kernels take groups); else streamed
        boolean packing = OneDnn.serves(precision, m) && (!int8 || int8Packs());
        boolean streamed = cpu && !packing && (!w.manyRows() || int8);
        int cols = Math.toIntExact(in);
        int stride = streamed ? WeightStreaming.paddedIn(cols) : cols;
        int group = int8 ? (packing ? stride : int8Group(stride)) : 0;
        int groups = int8 ? stride / group : 0;
        long total = 0;
        for (Part p : parts) {
            total += p.rows();
        }
        int rows = Math.toIntExact(total);
        long bytes = (long) rows * stride * precision.bytes();
        if (bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("weight " + parts.get(0).name() + " of " + bytes + " bytes is over 2 GiB");
        }
        ByteBuffer staging = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN); // zeros: the padding
        float[] scaleValues = int8 ? new float[rows * groups] : null;
        float[] row = new float[stride];
        int r = 0;
        for (Part p : parts) {
            try (Weights.Rows src = w.rows(p.name(), p.rows(), in)) {
                for (int i = 0; i < p.rows(); i++, r++) {
                    src.get(i * cols, row, 0, cols);
                    int base = r * stride;
                    if (int8) {
                        for (int g = 0; g < groups; g++) {
                            float scale = groupScale(row, g * group, group);
                            for (int k = g * group; k < Math.min(cols, (g + 1) * group); k++) {
                                staging.put(base + (streamed ? WeightStreaming.position(precision, k) : k), quantize(row[k], scale));
                            }
                            // the part's scale exactly: the integers are the unscaled row's
                            scaleValues[r * groups + g] = scale * p.scale();
                        }
                    } else {
                        for (int k = 0; k < cols; k++) {
                            int at = base + (streamed ? WeightStreaming.position(precision, k) : k);
                            staging.putShort(2 * at, toBfloat16(row[k] * p.scale()));
                        }
                    }
                }
            }
        }
        if (packing) {
            OneDnnWeight packed = int8 ? OneDnnWeight.packInt8(staging, scaleValues, rows, cols) : OneDnnWeight.pack(staging, rows, cols);
            DirectBuffers.free(staging);
            m.attachInternal("onednn-" + java.util.UUID.randomUUID(), packed); // freed with the model's arrays
            return new LowPrecisionWeight(precision, false, rows, cols, cols, group, null, null, null, null, null, null, packed, null, null);
        }
        Shape shape = int8 ? new Shape(rows, stride) : new Shape(rows, stride, 2);
        NDArray data = m.create(staging, shape, DataType.INT8); // TensorFlow copies into its own tensor
        DirectBuffers.free(staging);
        NDArray scales = int8 ? m.create(scaleValues, new Shape(rows, groups, 1)) : null;
        NDArray[] shapes = int8 ? new NDArray[] {m.create(new long[] {rows, groups, group}), m.create(new long[] {rows, stride})} : null;
        NDArray columns = null;
        if (streamed) {
            int[] c = new int[stride];
            for (int k = 0; k < stride; k++) {
                c[WeightStreaming.position(precision, k)] = Math.min(k, cols); // padding reads the zero column, cols
            }
            columns = m.create(c);
        }
        return new LowPrecisionWeight(precision, streamed, rows, cols, stride, group, data, scaleValues, scales, shapes, columns,
                streamed ? TfEager.memory(data) : null, null, null, null);
    }

    /**
     * Whether int8 weights are packed for oneDNN, one scale per output: its int8 kernel runs here and
     * {@code BLIP2_INT8_GROUP} is unset or {@code row} (a group size is the streamed layout's).
     */
    static boolean int8Packs() {
        String setting = System.getProperty("blip2.int8.group", System.getenv().getOrDefault("BLIP2_INT8_GROUP", "")).strip();
        return OneDnnWeight.int8Available() && (setting.isEmpty() || setting.equals("row"));
    }

    /** Whether int8 weights are packed for oneDNN in this process (on a CPU, TensorFlow): {@link #int8Packs}, with oneDNN loaded. */
    public static boolean int8Packed() {
        return OneDnn.available() && int8Packs();
    }

    /**
     * Values per int8 scale on the streamed layout: {@code BLIP2_INT8_GROUP} ({@code -Dblip2.int8.group}), a multiple of 64, or {@code row} for
     * one scale per output row; by default {@value #DEFAULT_INT8_GROUP} (models/README.md has the measurements). A
     * group that does not divide the padded row becomes the whole row.
     */
    static int int8Group(int stride) {
        String setting = System.getProperty("blip2.int8.group", System.getenv().getOrDefault("BLIP2_INT8_GROUP", "")).strip();
        int group;
        if (setting.isEmpty()) {
            group = DEFAULT_INT8_GROUP;
        } else if (setting.equals("row")) {
            group = stride;
        } else {
            try {
                group = Integer.parseInt(setting);
            } catch (NumberFormatException e) {
                group = -1;
            }
            if (group <= 0 || group % 64 != 0) {
                throw new IllegalArgumentException("BLIP2_INT8_GROUP (blip2.int8.group) must be a multiple of 64 or 'row', not '" + setting + "'");
            }
        }
        return stride % group == 0 ? group : stride;
    }

    /** The int8 scale of values [from, from + n) of a row: their largest magnitude over 127 (1 when all are zero). */
    static float groupScale(float[] row, int from, int n) {
        float max = 0f;
        for (int k = from; k < from + n; k++) {
            max = Math.max(max, Math.abs(row[k]));
        }
        return max > 0f ? max / 127f : 1f;
    }

    /**
     * Which kernels multiply a weight of this precision on a CPU, for logs: decided with {@link #load}, the one
     * place that chooses a layout.
     */
    public static String kernels(Precision p) {
        return switch (p) {
            case FLOAT32 -> "the engine's float32 GEMM";
            case BFLOAT16 -> OneDnnWeight.available() ? OneDnnWeight.describe()
                    : "weight streaming, " + WeightStreaming.describe() + "; " + OneDnnWeight.describe();
            case INT8 -> !int8Packed()
                    ? "weight streaming, " + WeightStreaming.describe() + (OneDnnWeight.available() ? "" : "; " + OneDnnWeight.describe())
                    : "oneDNN " + OneDnnWeight.int8Kernel() + ", a scale per output; one row " + (WeightStreaming.get().readsPackedInt8()
                    ? "by weight streaming, " + WeightStreaming.describe()
                    : "by oneDNN too" + (WeightStreaming.vectorized() ? ""
                    : " (start java with --add-modules jdk.incubator.vector for weight streaming, twice as fast there)"));
        };
    }

    /**
     * Whether weights of this precision run slower here than they could (say so, with {@link #kernels}): on the
     * scalar fallback, or bfloat16 without oneDNN (its natives did not load, or {@code BLIP2_ONEDNN=off}).
     */
    public static boolean slowKernels(Precision p) {
        if (p == Precision.BFLOAT16) {
            return !OneDnnWeight.available();
        }
        return p == Precision.INT8 && !WeightStreaming.vectorized();
    }

    /** The same weight with a bias [out] added after the product. */
    public LowPrecisionWeight withBias(NDArray b) {
        return new LowPrecisionWeight(precision, streamed, out, in, stride, group, data, scaleValues, scales, shapes, columns,
                view, packed, b, b == null ? null : b.toFloatArray());
    }

    /** {@code v / scale} rounded to the nearest integer in [-127, 127]. */
    static byte quantize(float v, float scale) {
        return (byte) Math.max(-127, Math.min(127, Math.round(v / scale)));
    }

    /** float32 to bfloat16 bits, rounded to nearest even (NaN kept a quiet NaN). */
    static short toBfloat16(float v) {
        int bits = Float.floatToRawIntBits(v);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    public Precision precision() {
        return precision;
    }

    public int out() {
        return out;
    }

    public int in() {
        return in;
    }

    /** Whether the weight is streamed from Java ({@link WeightStreaming}). */
    public boolean streamed() {
        return streamed;
    }

    /** Whether the weight is packed for oneDNN ({@link OneDnnWeight}). */
    public boolean packed() {
        return packed != null;
    }

    /** Whether {@link #forward(float[], int)} multiplies Java arrays (streamed or packed; not an engine array). */
    public boolean multipliesArrays() {
        return streamed || packed != null;
    }

    /** {@code x W^T (+ bias)} on Java arrays, streamed or by oneDNN: x [rows, in] to a new [rows, out]. */
    public float[] forward(float[] x, int rows) {
        if (packed != null) {
            return addBias(packed.multiply(x, rows), rows);
        }
        if (!streamed) {
            throw new IllegalStateException("this weight is laid out for the engine's GEMM");
        }
        float[] padded = x;
        if (stride != in) {
            padded = new float[rows * stride];
            for (int r = 0; r < rows; r++) {
                System.arraycopy(x, r * in, padded, r * stride, in);
            }
        }
        float[] ys = new float[rows * out];
        WeightStreaming.get().multiply(precision, view, scaleValues, group, out, stride, padded, rows, ys);
        return addBias(ys, rows);
    }

    /**
     * {@link #forward(float[], int)} with each row of the result its own array [out] (a batch of logits never one
     * array over the garbage collector's humongous size when packed).
     */
    public float[][] forwardRows(float[] x, int rows) {
        float[][] y;
        if (packed != null) {
            y = packed.multiplyRows(x, rows);
        } else {
            float[] flat = forward(x, rows);
            y = new float[rows][];
            for (int r = 0; r < rows; r++) {
                y[r] = java.util.Arrays.copyOfRange(flat, r * out, (r + 1) * out);
            }
            return y; // forward added the bias
        }
        for (float[] row : y) {
            addBias(row, 1);
        }
        return y;
    }

    private float[] addBias(float[] ys, int rows) {
        if (biasValues != null) {
            for (int r = 0; r < rows; r++) {
                for (int o = 0; o < out; o++) {
                    ys[r * out + o] += biasValues[o];
                }
            }
        }
        return ys;
    }

    /**
     * {@code x W^T (+ bias)}: x [..., in] to [..., out], float32 in and out. A streamed weight multiplies up to
     * {@link #STREAM_ROWS} rows in Java; more rows (a prompt, the Q-Former's queries) go to oneDNN's bfloat16 GEMM,
     * which reads the streamed layout as it is once x's columns are gathered into the same order (int8 weights
     * widened to bfloat16 with their scales on the way).
     */
    public NDArray forward(NDArray x) {
        Shape s = x.getShape();
        long[] dims = s.getShape().clone();
        dims[dims.length - 1] = out;
        int rows = Math.toIntExact(s.size() / in);
        if (packed != null) {
            return packedForward(x, rows, dims, OneDnnWeight.Activation.NONE, null);
        }
        if (streamed && rows <= STREAM_ROWS) {
            return x.getManager().create(forward(x.toFloatArray(), rows), new Shape(dims));
        }
        NDArray x2 = s.dimension() == 2 ? x : x.reshape(rows, in);
        LowPrecisionGemm f = LowPrecisionGemm.get(x.getManager());
        NDArray[] inputs;
        String name;
        if (!streamed) {
            name = f.bf16;
            inputs = new NDArray[] {x2, data};
        } else if (precision == Precision.BFLOAT16) {
            name = f.bf16Streamed;
            inputs = new NDArray[] {x2, columns, data, f.padding, f.axis};
        } else {
            name = f.int8Streamed;
            inputs = new NDArray[] {x2, columns, data, scales, f.padding, f.axis, shapes[0], shapes[1]};
        }
        NDArray y = TfEager.call(x.getManager(), name, inputs, 1)[0]; // (rows, out)
        if (bias != null) {
            y = y.add(bias);
        }
        return s.dimension() == 2 ? y : y.reshape(dims);
    }

    /**
     * {@code act(x W^T + b) + residual}: x [..., in], residual [..., out] or null, {@code activation} a Hugging Face
     * {@code hidden_act} name or null. A packed weight does it in one pass (oneDNN's epilogue: the output written
     * once, not three times); the others apply the same ops one after another.
     */
    public NDArray forward(NDArray x, String activation, NDArray residual) {
        OneDnnWeight.Activation fused = activation == null ? OneDnnWeight.Activation.NONE : OneDnnWeight.Activation.of(activation);
        if (packed != null && fused != null) {
            Shape s = x.getShape();
            long[] dims = s.getShape().clone();
            dims[dims.length - 1] = out;
            int rows = Math.toIntExact(s.size() / in);
            if (residual != null && residual.getShape().size() != (long) rows * out) {
                throw new IllegalArgumentException("residual " + residual.getShape() + " for a product of " + rows + " x " + out);
            }
            return packedForward(x, rows, dims, fused, residual);
        }
        NDArray y = forward(x);
        if (activation != null) {
            y = Ops.activation(activation, y);
        }
        return residual == null ? y : y.add(residual);
    }

    /**
     * x [..., in] through oneDNN: x (and the residual) read in place from the engine's memory, the result written
     * straight into a new engine array [..., out] in x's manager (no staging copy: an image batch's fc1 output is
     * 50 MB), the bias, activation and residual added on the way.
     */
    private NDArray packedForward(NDArray x, int rows, long[] dims, OneDnnWeight.Activation activation, NDArray residual) {
        NDArray x32 = float32(x);
        // a new array no op has read yet: written once here, then only read, as TensorFlow expects of its tensors
        NDArray result = x.getManager().create(new Shape(dims), DataType.FLOAT32);
        ByteBuffer r = residual == null ? null : TfEager.memory(float32(residual));
        packed.multiply(TfEager.memory(x32), rows, TfEager.memory(result), new OneDnnWeight.Epilogue(biasBuffer, activation, r));
        return result;
    }

    private static NDArray float32(NDArray a) {
        return a.getDataType() == DataType.FLOAT32 ? a : a.toType(DataType.FLOAT32, false);
    }
}
