package io.blip2stream.model.llm;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;

/**
 * Keys and values of the positions decoded so far, per layer: keys transposed [B, N, H, S], values [B, N, S, H].
 * TensorFlow arrays are immutable, so a step concatenates; the arrays live in the session's manager and the
 * replaced ones are closed at once.
 */
public final class KvCache implements AutoCloseable {
    private final NDManager manager;
    private final NDArray[] keysT;
    private final NDArray[] values;

    public KvCache(NDManager manager, int layers) {
        this.manager = manager;
        this.keysT = new NDArray[layers];
        this.values = new NDArray[layers];
    }

    public void append(int layer, NDArray newKeysT, NDArray newValues) {
        NDArray k;
        NDArray v;
        if (keysT[layer] == null) {
            k = newKeysT;
            v = newValues;
        } else {
            k = NDArrays.concat(new NDList(keysT[layer], newKeysT), 3);
            v = NDArrays.concat(new NDList(values[layer], newValues), 2);
        }
        k.attach(manager);
        v.attach(manager);
        if (keysT[layer] != null) {
            keysT[layer].close();
            values[layer].close();
        }
        keysT[layer] = k;
        values[layer] = v;
    }

    public NDArray keysT(int layer) {
        return keysT[layer];
    }

    public NDArray values(int layer) {
        return values[layer];
    }

    /** S, the number of positions cached (0 before the first append). */
    public int length() {
        return keysT[0] == null ? 0 : (int) keysT[0].getShape().get(3);
    }

    /**
     * Left-pads every layer with zeros to {@code length} positions: how rows of a shorter history join a batch
     * (the caller masks the padded positions).
     */
    public void padLeft(int length) {
        int s = length();
        if (s >= length || keysT[0] == null) {
            return;
        }
        for (int l = 0; l < keysT.length; l++) {
            Shape k = keysT[l].getShape(); // (B, N, H, S)
            Shape v = values[l].getShape(); // (B, N, S, H)
            try (NDManager scratch = manager.newSubManager()) {
                NDArray kPad = scratch.zeros(new Shape(k.get(0), k.get(1), k.get(2), length - s));
                NDArray vPad = scratch.zeros(new Shape(v.get(0), v.get(1), length - s, v.get(3)));
                replace(l, NDArrays.concat(new NDList(kPad, keysT[l]), 3), NDArrays.concat(new NDList(vPad, values[l]), 2));
            }
        }
    }

    /** Drops the first {@code n} positions of every row (positions every row masks). */
    public void trimLeft(int n) {
        if (n <= 0 || keysT[0] == null) {
            return;
        }
        for (int l = 0; l < keysT.length; l++) {
            replace(l, keysT[l].get(new NDIndex(":, :, :, {}:", n)), values[l].get(new NDIndex(":, :, {}:, :", n)));
        }
    }

    /** Appends the rows of {@code other} (same number of positions) after these, and closes {@code other}. */
    public void appendRows(KvCache other) {
        for (int l = 0; l < keysT.length; l++) {
            replace(l, NDArrays.concat(new NDList(keysT[l], other.keysT[l]), 0), NDArrays.concat(new NDList(values[l], other.values[l]), 0));
        }
        other.close();
    }

    /** Replaces a layer's keys [B, N, H, S] and values [B, N, S, H] (grown elsewhere), closing the old ones. */
    public void set(int layer, NDArray k, NDArray v) {
        if (keysT[layer] == null) {
            k.attach(manager);
            v.attach(manager);
            keysT[layer] = k;
            values[layer] = v;
        } else {
            replace(layer, k, v);
        }
    }

    private void replace(int layer, NDArray k, NDArray v) {
        k.attach(manager);
        v.attach(manager);
        keysT[layer].close();
        values[layer].close();
        keysT[layer] = k;
        values[layer] = v;
    }

    /** New row i is old row {@code rows[i]} (beam search); the number of rows may change. */
    public void reorder(int[] rows) {
        for (int l = 0; l < keysT.length; l++) {
            keysT[l] = pick(keysT[l], rows);
            values[l] = pick(values[l], rows);
        }
    }

    private NDArray pick(NDArray a, int[] rows) {
        if (a == null) {
            return null;
        }
        try (NDManager scratch = manager.newSubManager()) {
            NDList parts = new NDList(rows.length);
            for (int r : rows) {
                NDArray row = a.get(new NDIndex("{}:{}", r, r + 1));
                row.attach(scratch);
                parts.add(row);
            }
            NDArray out = parts.size() == 1 ? parts.get(0).add(0f) : NDArrays.concat(parts, 0);
            out.attach(manager);
            a.close();
            return out;
        }
    }

    @Override
    public void close() {
        for (int l = 0; l < keysT.length; l++) {
            if (keysT[l] != null) {
                keysT[l].close();
                values[l].close();
            }
        }
    }
}
