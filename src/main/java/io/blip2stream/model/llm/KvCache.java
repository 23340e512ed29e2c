package io.blip2stream.model.llm;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;

/**
 * Keys and values of the positions decoded so far, per layer: keys transposed [B, N, H, S], values [B, N, S, H].
 * TensorFlow arrays are immutable, so growing the history copies it; the arrays live in the session's manager and
 * the replaced ones are closed at once.
 *
 * <p>A decode step that can read its history in two parts (the TensorFlow decode layer) grows only an <em>open
 * block</em> of the newest positions (at most {@value #BLOCK}), which is merged into the rest once full: a step
 * then copies at most {@value #BLOCK} positions plus, amortised, 1/{@value #BLOCK} of the history, instead of the
 * whole history every step. Everything else sees one array per layer: reading {@link #keysT}, {@link #values} or
 * changing rows merges the open block first.
 */
public final class KvCache implements AutoCloseable {
    /** The most positions the open block holds before it is merged into the rest of the history. */
    public static final int BLOCK = 16;

    private final NDManager manager;
    private final NDArray[] keysT;
    private final NDArray[] values;
    private final NDArray[] openKeysT;  // (B, N, H, O) the newest positions, after keysT's; null when none
    private final NDArray[] openValues; // (B, N, O, H)

    public KvCache(NDManager manager, int layers) {
        this.manager = manager;
        this.keysT = new NDArray[layers];
        this.values = new NDArray[layers];
        this.openKeysT = new NDArray[layers];
        this.openValues = new NDArray[layers];
    }

    public void append(int layer, NDArray newKeysT, NDArray newValues) {
        merge(layer);
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

    /** The whole history of {@code layer}'s keys, transposed (B, N, H, S). */
    public NDArray keysT(int layer) {
        merge(layer);
        return keysT[layer];
    }

    /** The whole history of {@code layer}'s values (B, N, S, H). */
    public NDArray values(int layer) {
        merge(layer);
        return values[layer];
    }

    /** The history before the open block: keys (B, N, H, S - O), without merging. */
    public NDArray closedKeysT(int layer) {
        return keysT[layer];
    }

    /** The history before the open block: values (B, N, S - O, H), without merging. */
    public NDArray closedValues(int layer) {
        return values[layer];
    }

    /** The open block's keys (B, N, H, O), or null when it is empty. */
    public NDArray openKeysT(int layer) {
        return openKeysT[layer];
    }

    /** The open block's values (B, N, O, H), or null when it is empty. */
    public NDArray openValues(int layer) {
        return openValues[layer];
    }

    /**
     * Replaces {@code layer}'s open block by a grown one (its old positions and the new), closing the old block;
     * a block of {@value #BLOCK} positions is merged into the rest. The closed history must be non-empty.
     */
    public void setOpen(int layer, NDArray k, NDArray v) {
        k.attach(manager);
        v.attach(manager);
        if (openKeysT[layer] != null) {
            openKeysT[layer].close();
            openValues[layer].close();
        }
        openKeysT[layer] = k;
        openValues[layer] = v;
        if (k.getShape().get(3) >= BLOCK) {
            merge(layer);
        }
    }

    /** S, the number of positions cached (0 before the first append). */
    public int length() {
        if (keysT[0] == null) {
            return 0;
        }
        return (int) (keysT[0].getShape().get(3) + (openKeysT[0] == null ? 0 : openKeysT[0].getShape().get(3)));
    }

    /** Moves {@code layer}'s open block to the end of the rest of its history. */
    private void merge(int layer) {
        if (openKeysT[layer] == null) {
            return;
        }
        NDArray k = NDArrays.concat(new NDList(keysT[layer], openKeysT[layer]), 3);
        NDArray v = NDArrays.concat(new NDList(values[layer], openValues[layer]), 2);
        openKeysT[layer].close();
        openValues[layer].close();
        openKeysT[layer] = null;
        openValues[layer] = null;
        replace(layer, k, v);
    }

    private void mergeAll() {
        for (int l = 0; l < keysT.length; l++) {
            merge(l);
        }
    }

    /**
     * Left-pads every layer with zeros to {@code length} positions: how rows of a shorter history join a batch
     * (the caller masks the padded positions).
     */
    public void padLeft(int length) {
        mergeAll();
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
        mergeAll();
        for (int l = 0; l < keysT.length; l++) {
            replace(l, keysT[l].get(new NDIndex(":, :, :, {}:", n)), values[l].get(new NDIndex(":, :, {}:, :", n)));
        }
    }

    /** Appends the rows of {@code other} (same number of positions) after these, and closes {@code other}. */
    public void appendRows(KvCache other) {
        mergeAll();
        other.mergeAll();
        for (int l = 0; l < keysT.length; l++) {
            replace(l, NDArrays.concat(new NDList(keysT[l], other.keysT[l]), 0), NDArrays.concat(new NDList(values[l], other.values[l]), 0));
        }
        other.close();
    }

    /** Replaces a layer's keys [B, N, H, S] and values [B, N, S, H] (grown elsewhere), closing the old ones. */
    public void set(int layer, NDArray k, NDArray v) {
        merge(layer);
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
        mergeAll();
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
            if (openKeysT[l] != null) {
                openKeysT[l].close();
                openValues[l].close();
            }
            if (keysT[l] != null) {
                keysT[l].close();
                values[l].close();
            }
        }
    }
}
