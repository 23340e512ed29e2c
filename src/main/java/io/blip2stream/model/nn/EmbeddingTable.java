package io.blip2stream.model.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.weights.Weights;


/**
 * An embedding table [rows, dim]. For inference it is read in Java from the memory-mapped checkpoint: DJL's
 * TensorFlow engine has no gather, and a row copy is cheaper than a device op for a handful of tokens. When the
 * weights are recording (training) the table is an array instead, and {@link #lookup} gathers from it, so that
 * gradients reach it.
 */
public final class EmbeddingTable {
    private final String name;
    private final Weights.Rows table; // (rows, dim), read from the mapped checkpoint; or null when array-backed
    private final NDArray array;     // (rows, dim), or null when read in Java
    private final int rows;
    private final int dim;

    private EmbeddingTable(String name, Weights.Rows table, NDArray array, int rows, int dim) {
        this.name = name;
        this.table = table;
        this.array = array;
        this.rows = rows;
        this.dim = dim;
    }

    /** A table read in Java. */
    public static EmbeddingTable load(Weights w, String name, long rows, long dim) {
        return new EmbeddingTable(name, w.rows(name, rows, dim), null, Math.toIntExact(rows), Math.toIntExact(dim));
    }

    /** A table read in Java, or an array in {@code m} when {@code w} is recording (training). */
    public static EmbeddingTable load(Weights w, NDManager m, String name, long rows, long dim) {
        if (w.isRecording()) {
            return new EmbeddingTable(name, null, w.load(m, name, rows, dim), Math.toIntExact(rows), Math.toIntExact(dim));
        }
        return load(w, name, rows, dim);
    }

    public int rows() {
        return rows;
    }

    public int dim() {
        return dim;
    }

    /** The table as an array when it is one (training), else null. */
    public NDArray array() {
        return array;
    }

    /** The rows of {@code ids} as an array [n, dim] in {@code scope}; a gather (differentiable) when array-backed. */
    public NDArray lookup(NDManager scope, int[] ids) {
        for (int id : ids) {
            check(id);
        }
        if (array != null) {
            NDArray index = scope.create(ids);
            NDArray rowsOut = array.get(new NDIndex("{}", index)); // (n, dim)
            rowsOut.attach(scope);
            return rowsOut;
        }
        float[] out = new float[ids.length * dim];
        for (int i = 0; i < ids.length; i++) {
            table.get(ids[i] * dim, out, i * dim, dim);
        }
        return scope.create(out, new Shape(ids.length, dim));
    }

    /** Copies row {@code id} into {@code dst} at {@code offset}. */
    public void copyRow(int id, float[] dst, int offset) {
        check(id);
        javaTable().get(id * dim, dst, offset, dim);
    }

    /** Adds row {@code id} to {@code dst} at {@code offset}. */
    public void addRow(int id, float[] dst, int offset) {
        check(id);
        javaTable().add(id * dim, dst, offset, dim);
    }

    private Weights.Rows javaTable() {
        if (table == null) {
            throw new IllegalStateException(name + " is a training array; look rows up with lookup()");
        }
        return table;
    }

    private void check(int id) {
        if (id < 0 || id >= rows) {
            throw new IllegalArgumentException("index " + id + " is outside " + name + " (" + rows + " rows)");
        }
    }
}
