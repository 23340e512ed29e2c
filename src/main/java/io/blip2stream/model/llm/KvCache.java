package io.blip2stream.model.llm;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;

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
