package io.blip2stream.model.weights;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * The one place that knows each type a checkpoint stores its values in (F32, BF16, F16, F64): a tensor's values read
 * as float32 from its mapping, one at a time or into a float32 copy.
 */
final class StoredValues {
    private StoredValues() {}

    /** A tensor's elements as float32, read one at a time from its mapping in whatever type it is stored. */
    interface Elements {
        float get(int i);
    }

    static Elements elements(SafetensorsFile.Entry e, ByteBuffer raw) {
        switch (e.dtype()) {
            case "F32": {
                FloatBuffer f = raw.asFloatBuffer();
                return f::get;
            }
            case "BF16": {
                ShortBuffer b = raw.asShortBuffer();
                return i -> Float.intBitsToFloat((b.get(i) & 0xffff) << 16);
            }
            case "F16": {
                ShortBuffer h = raw.asShortBuffer();
                return i -> Half.toFloat(h.get(i));
            }
            case "F64": {
                java.nio.DoubleBuffer d = raw.asDoubleBuffer();
                return i -> (float) d.get(i);
            }
            default:
                throw new IllegalArgumentException("tensor '" + e.name() + "' has unsupported dtype " + e.dtype());
        }
    }

    /** {@code raw} (the tensor's mapping) itself when the checkpoint stores F32, else a float32 copy in a direct buffer of its own. */
    static ByteBuffer float32(SafetensorsFile.Entry e, ByteBuffer raw) {
        if (e.dtype().equals("F32")) {
            return raw;
        }
        Elements in = elements(e, raw); // the one place that knows each stored type
        int n = Math.toIntExact(e.numel());
        ByteBuffer out = ByteBuffer.allocateDirect(Math.multiplyExact(n, 4)).order(ByteOrder.LITTLE_ENDIAN);
        FloatBuffer o = out.asFloatBuffer();
        for (int i = 0; i < n; i++) {
            o.put(i, in.get(i));
        }
        return out;
    }

    /** IEEE 754 half precision to float ({@code Float.float16ToFloat} arrived in JDK 20). */
    static final class Half {
        private Half() {}

        static float toFloat(short h) {
            int bits = h & 0xffff;
            int sign = (bits & 0x8000) << 16;
            int exp = (bits >>> 10) & 0x1f;
            int mant = bits & 0x3ff;
            if (exp == 0x1f) {
                return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
            }
            if (exp == 0) {
                if (mant == 0) {
                    return Float.intBitsToFloat(sign);
                }
                // subnormal: value = mant * 2^-24
                float v = mant * 0x1p-24f;
                return sign != 0 ? -v : v;
            }
            return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
        }
    }
}
