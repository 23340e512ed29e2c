package io.blip2stream.model.nn;

import io.blip2stream.model.weights.Weights;

import java.nio.FloatBuffer;

/**
 * An embedding table [rows, dim] read in Java from the memory-mapped checkpoint: DJL's TensorFlow engine has no
 * gather, and a row copy is cheaper than a device op for a handful of tokens.
 */
public final class EmbeddingTable {
    private final String name;
    private final FloatBuffer table; // (rows, dim)
    private final int rows;
    private final int dim;

    private EmbeddingTable(String name, FloatBuffer table, int rows, int dim) {
        this.name = name;
        this.table = table;
        this.rows = rows;
        this.dim = dim;
    }

    public static EmbeddingTable load(Weights w, String name, long rows, long dim) {
        return new EmbeddingTable(name, w.floats(name, rows, dim), Math.toIntExact(rows), Math.toIntExact(dim));
    }

    public int rows() {
        return rows;
    }

    public int dim() {
        return dim;
    }

    /** Copies row {@code id} into {@code dst} at {@code offset}. */
    public void copyRow(int id, float[] dst, int offset) {
        if (id < 0 || id >= rows) {
            throw new IllegalArgumentException("index " + id + " is outside " + name + " (" + rows + " rows)");
        }
        table.get(id * dim, dst, offset, dim);
    }

    /** Adds row {@code id} to {@code dst} at {@code offset}. */
    public void addRow(int id, float[] dst, int offset) {
        if (id < 0 || id >= rows) {
            throw new IllegalArgumentException("index " + id + " is outside " + name + " (" + rows + " rows)");
        }
        int base = id * dim;
        for (int i = 0; i < dim; i++) {
            dst[offset + i] += table.get(base + i);
        }
    }
}
