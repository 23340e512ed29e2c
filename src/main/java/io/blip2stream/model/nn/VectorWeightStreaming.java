package io.blip2stream.model.nn;

import io.blip2stream.model.weights.Precision;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * {@link WeightStreaming} on the Vector API (loaded by name only when module jdk.incubator.vector is present). A
 * block of 16 ints is loaded whole (one 512-bit load, or two 256-bit ones on AVX2) and each of its 4 int8 or 2
 * bfloat16 parts is widened in its own lanes by shifts: int8 by a left shift and an arithmetic right shift, then a
 * conversion to float; bfloat16 by a shift or a mask into the high half, which is the float. One loop per type,
 * and one per row count: a vector chosen by a branch inside a loop would be boxed on every step.
 */
final class VectorWeightStreaming extends WeightStreaming {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED.length() >= 16
            ? FloatVector.SPECIES_512 : FloatVector.SPECIES_256;
    private static final VectorSpecies<Integer> I = F == FloatVector.SPECIES_512 ? IntVector.SPECIES_512 : IntVector.SPECIES_256;
    private static final int L = F.length(); // lanes per vector: 16 (AVX-512) or 8 (AVX2); a block is 16 lanes
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    @Override
    public String name() {
        return "vector, " + F.vectorBitSize() + "-bit";
    }

    @Override
    protected void rows(Precision precision, ByteBuffer w, float[] scales, int group, int in, float[] x, int rows, float[] y,
                        int out, int o0, int o1) {
        boolean int8 = precision == Precision.INT8;
        for (int o = o0; o < o1; o++) {
            int r = 0;
            for (; r + 4 <= rows; r += 4) {
                if (int8) {
                    int8Rows4(w, scales, group, in, x, r, y, out, o);
                } else {
                    bf16Rows4(w, in, x, r, y, out, o);
                }
            }
            for (; r < rows; r++) {
                y[r * out + o] = int8 ? int8Row(w, scales, group, in, x, r * in, o) : bf16Row(w, in, x, r * in, o);
            }
        }
    }

    /**
     * Block b of a oneDNN-packed int8 weight times one row: per pair of inputs, two 64-byte vectors hold 64 outputs
     * (int lane i: outputs 2i and 2i + 1 at inputs k and k + 1), each byte widened in its own lane; eight independent
     * accumulators (even and odd outputs, input k and k + 1, two halves) keep the multiply-adds' latency hidden.
     */
    @Override
    public boolean readsPackedInt8() {
        return L == 16;
    }

    @Override
    protected void packedInt8Block(ByteBuffer w, int paddedIn, float[] xr, int b, float[] sums) {
        if (L != 16) { // AVX2: 8 lanes do not hold the layout's 16 ints (OneDnnWeight then leaves one row to oneDNN)
            new Scalar().packedInt8Block(w, paddedIn, xr, b, sums);
            return;
        }
        int base = b * 64 * paddedIn; // the block's column of input blocks: 64 bytes per input, contiguous
        FloatVector e0 = FloatVector.zero(F);
        FloatVector e0b = e0;
        FloatVector o0 = e0;
        FloatVector o0b = e0;
        FloatVector e1 = e0;
        FloatVector e1b = e0;
        FloatVector o1 = e0;
        FloatVector o1b = e0;
        for (int k = 0; k < paddedIn; k += 2) {
            int at = base + k * 64;
            IntVector v = IntVector.fromByteBuffer(I, w, at, LE);      // outputs 0..31
            IntVector u = IntVector.fromByteBuffer(I, w, at + 64, LE); // outputs 32..63
            FloatVector xa = FloatVector.broadcast(F, xr[k]);
            FloatVector xb = FloatVector.broadcast(F, xr[k + 1]);
            e0 = byte0(v).fma(xa, e0);
            e0b = byte1(v).fma(xb, e0b);
            o0 = byte2(v).fma(xa, o0);
            o0b = byte3(v).fma(xb, o0b);
            e1 = byte0(u).fma(xa, e1);
            e1b = byte1(u).fma(xb, e1b);
            o1 = byte2(u).fma(xa, o1);
            o1b = byte3(u).fma(xb, o1b);
        }
        e0.add(e0b).intoArray(sums, 0);
        o0.add(o0b).intoArray(sums, 16);
        e1.add(e1b).intoArray(sums, 32);
        o1.add(o1b).intoArray(sums, 48);
    }

    /** Positions a vector at a time, the sum over k in four accumulators (their latency hidden); the rest as the scalar sums. */
    @Override
    protected void keyScores0(ByteBuffer keysT, int base, int hd, int c, float[] q, float[] scores) {
        int p = 0;
        for (; p + L <= c; p += L) {
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            int k = 0;
            for (; k + 4 <= hd; k += 4) {
                int at = 4 * (base + k * c + p);
                a0 = FloatVector.fromByteBuffer(F, keysT, at, LE).fma(FloatVector.broadcast(F, q[k]), a0);
                a1 = FloatVector.fromByteBuffer(F, keysT, at + 4 * c, LE).fma(FloatVector.broadcast(F, q[k + 1]), a1);
                a2 = FloatVector.fromByteBuffer(F, keysT, at + 8 * c, LE).fma(FloatVector.broadcast(F, q[k + 2]), a2);
                a3 = FloatVector.fromByteBuffer(F, keysT, at + 12 * c, LE).fma(FloatVector.broadcast(F, q[k + 3]), a3);
            }
            for (; k < hd; k++) {
                a0 = FloatVector.fromByteBuffer(F, keysT, 4 * (base + k * c + p), LE).fma(FloatVector.broadcast(F, q[k]), a0);
            }
            a0.add(a1).add(a2.add(a3)).intoArray(scores, p);
        }
        for (; p < c; p++) {
            float sum = 0f;
            for (int k = 0; k < hd; k++) {
                sum += q[k] * keysT.getFloat(4 * (base + k * c + p));
            }
            scores[p] = sum;
        }
    }

    /** A vector of the head dimension at a time, over positions in two accumulators; the rest as the scalar sums. */
    @Override
    protected void weightedValues0(ByteBuffer values, int base, int c, int hd, float[] w, float[] ctx, int co) {
        int h = 0;
        for (; h + L <= hd; h += L) {
            FloatVector a0 = FloatVector.fromArray(F, ctx, co + h);
            FloatVector a1 = FloatVector.zero(F);
            int p = 0;
            for (; p + 2 <= c; p += 2) {
                int at = 4 * (base + p * hd + h);
                a0 = FloatVector.fromByteBuffer(F, values, at, LE).fma(FloatVector.broadcast(F, w[p]), a0);
                a1 = FloatVector.fromByteBuffer(F, values, at + 4 * hd, LE).fma(FloatVector.broadcast(F, w[p + 1]), a1);
            }
            if (p < c) {
                a0 = FloatVector.fromByteBuffer(F, values, 4 * (base + p * hd + h), LE).fma(FloatVector.broadcast(F, w[p]), a0);
            }
            a0.add(a1).intoArray(ctx, co + h);
        }
        for (; h < hd; h++) {
            float sum = ctx[co + h];
            for (int p = 0; p < c; p++) {
                sum += w[p] * values.getFloat(4 * (base + p * hd + h));
            }
            ctx[co + h] = sum;
        }
    }

    /** Row o of an int8 weight times one row of x (at xo): each group's sum times its scale. */
    private static float int8Row(ByteBuffer w, float[] scales, int group, int in, float[] x, int xo, int o) {
        int base = o * in; // byte offset of row o (out * in fits an int: checked against the buffer's capacity)
        int s = o * (in / group);
        FloatVector total = FloatVector.zero(F);
        for (int g = 0; g < in; g += group, s++) {
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int k = g; k < g + group; k += 64) {
                for (int h = 0; h < 16; h += L) {
                    IntVector v = IntVector.fromByteBuffer(I, w, base + k + 4 * h, LE);
                    int xk = xo + k + h;
                    a0 = byte0(v).fma(FloatVector.fromArray(F, x, xk), a0);
                    a1 = byte1(v).fma(FloatVector.fromArray(F, x, xk + 16), a1);
                    a2 = byte2(v).fma(FloatVector.fromArray(F, x, xk + 32), a2);
                    a3 = byte3(v).fma(FloatVector.fromArray(F, x, xk + 48), a3);
                }
            }
            total = a0.add(a1).add(a2.add(a3)).fma(FloatVector.broadcast(F, scales[s]), total);
        }
        return total.reduceLanes(VectorOperators.ADD);
    }

    /** Row o of an int8 weight times rows r..r+3 of x, into y. */
    private static void int8Rows4(ByteBuffer w, float[] scales, int group, int in, float[] x, int r, float[] y, int out, int o) {
        int base = o * in;
        int x0 = r * in;
        int s = o * (in / group);
        FloatVector t0 = FloatVector.zero(F);
        FloatVector t1 = t0;
        FloatVector t2 = t0;
        FloatVector t3 = t0;
        for (int g = 0; g < in; g += group, s++) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector b0 = a0;
        FloatVector a1 = a0;
        FloatVector b1 = a0;
        FloatVector a2 = a0;
        FloatVector b2 = a0;
        FloatVector a3 = a0;
        FloatVector b3 = a0;
        for (int k = g; k < g + group; k += 64) {
            for (int h = 0; h < 16; h += L) {
                IntVector v = IntVector.fromByteBuffer(I, w, base + k + 4 * h, LE);
                int xk = x0 + k + h;
                FloatVector p = byte0(v);
                FloatVector q = byte1(v);
                a0 = q.fma(FloatVector.fromArray(F, x, xk + 16), p.fma(FloatVector.fromArray(F, x, xk), a0));
                a1 = q.fma(FloatVector.fromArray(F, x, xk + in + 16), p.fma(FloatVector.fromArray(F, x, xk + in), a1));
                a2 = q.fma(FloatVector.fromArray(F, x, xk + 2 * in + 16), p.fma(FloatVector.fromArray(F, x, xk + 2 * in), a2));
                a3 = q.fma(FloatVector.fromArray(F, x, xk + 3 * in + 16), p.fma(FloatVector.fromArray(F, x, xk + 3 * in), a3));
                p = byte2(v);
                q = byte3(v);
                b0 = q.fma(FloatVector.fromArray(F, x, xk + 48), p.fma(FloatVector.fromArray(F, x, xk + 32), b0));
                b1 = q.fma(FloatVector.fromArray(F, x, xk + in + 48), p.fma(FloatVector.fromArray(F, x, xk + in + 32), b1));
                b2 = q.fma(FloatVector.fromArray(F, x, xk + 2 * in + 48), p.fma(FloatVector.fromArray(F, x, xk + 2 * in + 32), b2));
                b3 = q.fma(FloatVector.fromArray(F, x, xk + 3 * in + 48), p.fma(FloatVector.fromArray(F, x, xk + 3 * in + 32), b3));
            }
        }
        FloatVector scale = FloatVector.broadcast(F, scales[s]);
        t0 = a0.add(b0).fma(scale, t0);
        t1 = a1.add(b1).fma(scale, t1);
        t2 = a2.add(b2).fma(scale, t2);
        t3 = a3.add(b3).fma(scale, t3);
        }
        y[r * out + o] = t0.reduceLanes(VectorOperators.ADD);
        y[(r + 1) * out + o] = t1.reduceLanes(VectorOperators.ADD);
        y[(r + 2) * out + o] = t2.reduceLanes(VectorOperators.ADD);
        y[(r + 3) * out + o] = t3.reduceLanes(VectorOperators.ADD);
    }

    /** Row o of a bfloat16 weight times one row of x (at xo). */
    private static float bf16Row(ByteBuffer w, int in, float[] x, int xo, int o) {
        int base = 2 * o * in; // byte offset of row o
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int k = 0; k < in; k += 64) { // two blocks of 32 per step: four independent accumulators
            for (int h = 0; h < 16; h += L) {
                IntVector v = IntVector.fromByteBuffer(I, w, base + 2 * k + 4 * h, LE);
                IntVector u = IntVector.fromByteBuffer(I, w, base + 2 * k + 64 + 4 * h, LE);
                int xk = xo + k + h;
                a0 = low(v).fma(FloatVector.fromArray(F, x, xk), a0);
                a1 = high(v).fma(FloatVector.fromArray(F, x, xk + 16), a1);
                a2 = low(u).fma(FloatVector.fromArray(F, x, xk + 32), a2);
                a3 = high(u).fma(FloatVector.fromArray(F, x, xk + 48), a3);
            }
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    /** Row o of a bfloat16 weight times rows r..r+3 of x, into y; blocks of 32, in steps of one block. */
    private static void bf16Rows4(ByteBuffer w, int in, float[] x, int r, float[] y, int out, int o) {
        int base = 2 * o * in;
        int x0 = r * in;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector b0 = a0;
        FloatVector a1 = a0;
        FloatVector b1 = a0;
        FloatVector a2 = a0;
        FloatVector b2 = a0;
        FloatVector a3 = a0;
        FloatVector b3 = a0;
        for (int k = 0; k < in; k += 32) {
            for (int h = 0; h < 16; h += L) {
                IntVector v = IntVector.fromByteBuffer(I, w, base + 2 * k + 4 * h, LE);
                int xk = x0 + k + h;
                FloatVector p = low(v);
                FloatVector q = high(v);
                a0 = p.fma(FloatVector.fromArray(F, x, xk), a0);
                b0 = q.fma(FloatVector.fromArray(F, x, xk + 16), b0);
                a1 = p.fma(FloatVector.fromArray(F, x, xk + in), a1);
                b1 = q.fma(FloatVector.fromArray(F, x, xk + in + 16), b1);
                a2 = p.fma(FloatVector.fromArray(F, x, xk + 2 * in), a2);
                b2 = q.fma(FloatVector.fromArray(F, x, xk + 2 * in + 16), b2);
                a3 = p.fma(FloatVector.fromArray(F, x, xk + 3 * in), a3);
                b3 = q.fma(FloatVector.fromArray(F, x, xk + 3 * in + 16), b3);
            }
        }
        y[r * out + o] = a0.add(b0).reduceLanes(VectorOperators.ADD);
        y[(r + 1) * out + o] = a1.add(b1).reduceLanes(VectorOperators.ADD);
        y[(r + 2) * out + o] = a2.add(b2).reduceLanes(VectorOperators.ADD);
        y[(r + 3) * out + o] = a3.add(b3).reduceLanes(VectorOperators.ADD);
    }

    private static FloatVector byte0(IntVector v) {
        return (FloatVector) v.lanewise(VectorOperators.LSHL, 24).lanewise(VectorOperators.ASHR, 24).convert(VectorOperators.I2F, 0);
    }

    private static FloatVector byte1(IntVector v) {
        return (FloatVector) v.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 24).convert(VectorOperators.I2F, 0);
    }

    private static FloatVector byte2(IntVector v) {
        return (FloatVector) v.lanewise(VectorOperators.LSHL, 8).lanewise(VectorOperators.ASHR, 24).convert(VectorOperators.I2F, 0);
    }

    private static FloatVector byte3(IntVector v) {
        return (FloatVector) v.lanewise(VectorOperators.ASHR, 24).convert(VectorOperators.I2F, 0);
    }

    private static FloatVector low(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector high(IntVector v) {
        return v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats();
    }
}
