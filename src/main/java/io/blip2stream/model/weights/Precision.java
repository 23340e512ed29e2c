package io.blip2stream.model.weights;

import java.util.Locale;

/**
 * The precision a model's weights are kept and multiplied in ({@code model.dtype}, {@code --dtype}).
 *
 * <ul>
 *   <li>{@link #FLOAT32}: every weight an engine array of float32, as the parity tests check it.</li>
 *   <li>{@link #BFLOAT16}: the weights of every linear layer kept as bfloat16 (2 bytes), multiplied with float32
 *       accumulation; layer norms, softmax, logits processing and sampling in float32.</li>
 *   <li>{@link #INT8}: weight-only int8 with one float32 scale per output channel for the linear layers of the
 *       Q-Former and the language model; the vision encoder in bfloat16.</li>
 * </ul>
 *
 * {@code auto} is the checkpoint's own precision where this process runs it fast, float32 otherwise: a bfloat16
 * checkpoint runs in bfloat16 where the vector kernels run (model.nn.WeightStreaming); a float16
 * one in float32 (no CPU here multiplies float16 faster than float32), as does everything on PyTorch.
 */
public enum Precision {
    FLOAT32("float32"),
    BFLOAT16("bfloat16"),
    INT8("int8");

    /** The setting that picks the precision from the checkpoint (see the class comment). */
    public static final String AUTO = "auto";

    private final String id;

    Precision(String id) {
        this.id = id;
    }

    /** The name used in settings, logs and metrics: float32, bfloat16, int8. */
    public String id() {
        return id;
    }

    @Override
    public String toString() {
        return id;
    }

    /** Whether {@code setting} is a valid {@code model.dtype}: one of the precisions or {@code auto}. */
    public static boolean isSetting(String setting) {
        return setting != null && (AUTO.equals(norm(setting)) || find(setting) != null);
    }

    /** float32, bfloat16 or int8 (not auto); anything else fails naming the valid values. */
    public static Precision parse(String name) {
        Precision p = find(name);
        if (p == null) {
            throw new IllegalArgumentException("dtype '" + name + "' is not one of float32, bfloat16, int8, auto");
        }
        return p;
    }

    private static Precision find(String name) {
        if (name == null) {
            return null;
        }
        for (Precision p : values()) {
            if (p.id.equals(norm(name))) {
                return p;
            }
        }
        return null;
    }

    private static String norm(String s) {
        return s.strip().toLowerCase(Locale.ROOT);
    }

    /**
     * The precision a setting means for a checkpoint stored as {@code storedDtype} (safetensors' name of the type most
     * of its parameters have: F32, BF16, F16), where {@code bfloat16Fast} says whether this process multiplies
     * bfloat16 weights at least as fast as float32 ones.
     */
    public static Precision resolve(String setting, String storedDtype, boolean bfloat16Fast) {
        if (!AUTO.equals(norm(setting))) {
            return parse(setting);
        }
        return "BF16".equals(storedDtype) && bfloat16Fast ? BFLOAT16 : FLOAT32;
    }

    /** The vision encoder's precision under this one: int8 keeps the encoder in bfloat16 (compute-bound, see models/README.md). */
    public Precision forVisionEncoder() {
        return this == INT8 ? BFLOAT16 : this;
    }

    /** Bytes per weight. */
    public int bytes() {
        return switch (this) {
            case FLOAT32 -> 4;
            case BFLOAT16 -> 2;
            case INT8 -> 1;
        };
    }
}
