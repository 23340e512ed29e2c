package io.blip2stream.model.weights;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The tensors of a Hugging Face checkpoint folder: {@code model.safetensors}, or the shards listed in
 * {@code model.safetensors.index.json}. Tensors are memory-mapped; F16, BF16 and F64 are converted to float32 one
 * tensor at a time, off the heap. Every load names the tensor and checks its shape.
 */
public final class Weights implements AutoCloseable {

    private final Path dir;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile.Entry> entries;
    private final Precision precision; // what Linear layers loaded through these weights keep
    private final boolean manyRows;    // their products always have many rows (the vision encoder)
    private final boolean owner;       // false for a view (withPrecision): closing it leaves the files open
    private List<LoadedTensor> recorded; // null unless recording (training)

    private Weights(Path dir, List<SafetensorsFile> files, Map<String, SafetensorsFile.Entry> entries, Precision precision,
                    boolean manyRows, boolean owner) {
        this.dir = dir;
        this.files = files;
        this.entries = entries;
        this.precision = precision;
        this.manyRows = manyRows;
        this.owner = owner;
    }

    /**
     * The same tensors, for loading layers that keep their weights in {@code p} ({@link #precision()}); shares the
     * open files with this one, which alone closes them.
     */
    public Weights withPrecision(Precision p) {
        return view(p, manyRows);
    }

    /**
     * The same tensors, for layers whose products always have many rows (an image's 257 patches, never one decoded
     * token): their low-precision weights are laid out for the engine's GEMM rather than for streaming.
     */
    public Weights forManyRows() {
        return view(precision, true);
    }

    /** Whether layers loaded through these weights multiply many rows at a time ({@link #forManyRows}). */
    public boolean manyRows() {
        return manyRows;
    }

    private Weights view(Precision p, boolean many) {
        if (p == precision && many == manyRows) {
            return this;
        }
        if (recorded != null && p != Precision.FLOAT32) {
            throw new IllegalStateException("training records float32 weights only, not " + p);
        }
        Weights view = new Weights(dir, files, entries, p, many, false);
        view.recorded = recorded;
        return view;
    }

    /** The precision Linear layers loaded through these weights keep their weights in: float32 unless {@link #withPrecision}. */
    public Precision precision() {
        return precision;
    }

    /**
     * The safetensors type most of the checkpoint's values are stored in (F32, BF16, F16, ...), by element count: what
     * {@code auto} precision follows.
     */
    public String storedDtype() {
        Map<String, Long> counts = new LinkedHashMap<>();
        for (SafetensorsFile.Entry e : entries.values()) {
            counts.merge(e.dtype(), e.numel(), Long::sum);
        }
        return counts.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse("F32");
    }

    public static Weights open(Path modelDir) throws IOException {
        Path single = modelDir.resolve("model.safetensors");
        Path index = modelDir.resolve("model.safetensors.index.json");
        List<Path> paths = new ArrayList<>();
        if (Files.exists(index)) {
            JsonNode map = new ObjectMapper().readTree(index.toFile()).get("weight_map");
            if (map == null) {
                throw new IOException(index + " has no weight_map");
            }
            TreeSet<String> shards = new TreeSet<>();
            for (Iterator<JsonNode> it = map.elements(); it.hasNext(); ) {
                shards.add(it.next().asText());
            }
            for (String s : shards) {
                paths.add(modelDir.resolve(s));
            }
        } else if (Files.exists(single)) {
            paths.add(single);
        } else {
            throw new IOException("no weights in " + modelDir
                    + " (expected model.safetensors or model.safetensors.index.json)");
        }
        List<SafetensorsFile> files = new ArrayList<>();
        Map<String, SafetensorsFile.Entry> entries = new LinkedHashMap<>();
        try {
            for (Path p : paths) {
                if (!Files.exists(p)) {
                    throw new IOException("missing weight shard " + p);
                }
                SafetensorsFile f = SafetensorsFile.open(p);
                files.add(f);
                entries.putAll(f.entries());
            }
        } catch (IOException | RuntimeException e) {
            for (SafetensorsFile f : files) {
                f.close();
            }
            throw e;
        }
        return new Weights(modelDir, files, entries, Precision.FLOAT32, false, true);
    }

    /**
     * Makes every later load record the array it returns and how it maps back to checkpoint tensors (see
     * {@link #recorded()}): training finds a model's parameters this way, through the inference code's own loading.
     */
    public Weights recording() {
        if (recorded == null) {
            recorded = new ArrayList<>();
        }
        return this;
    }

    public boolean isRecording() {
        return recorded != null;
    }

    /** The arrays loaded since {@link #recording()}, in load order. */
    public List<LoadedTensor> recorded() {
        if (recorded == null) {
            throw new IllegalStateException("these weights are not recording their loads");
        }
        return List.copyOf(recorded);
    }

    /**
     * Records that {@code fused} now holds {@code parts} (arrays loaded earlier, now dropped), concatenated along
     * {@code axis} of the array, each multiplied by its {@code scales} entry. No-op unless recording.
     */
    public void recordFused(NDArray fused, List<NDArray> parts, int axis, float[] scales) {
        if (recorded == null) {
            return;
        }
        List<LoadedTensor.Part> combined = new ArrayList<>();
        long offset = 0;
        for (int i = 0; i < parts.size(); i++) {
            NDArray part = parts.get(i);
            LoadedTensor t = recorded.stream().filter(r -> r.array() == part).findFirst()
                    .orElseThrow(() -> new IllegalStateException("a fused part was not loaded through these weights"));
            recorded.remove(t);
            LoadedTensor.Part only = t.parts().get(0);
            long len = part.getShape().get(axis);
            combined.add(new LoadedTensor.Part(only.name(), only.shape(), axis, offset, offset + len, scales[i], only.transposed()));
            offset += len;
        }
        recorded.add(new LoadedTensor(fused, combined));
    }

    private NDArray record(NDArray array, String name, long[] shape, boolean transposed) {
        if (recorded != null) {
            long extent = transposed ? array.getShape().get(1) : shape[0];
            recorded.add(new LoadedTensor(array, List.of(new LoadedTensor.Part(name, shape.clone(), transposed ? 1 : 0, 0, extent, 1f, transposed))));
        }
        return array;
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    public long[] shape(String name) {
        return entry(name).shape().clone();
    }

    public java.util.Set<String> names() {
        return entries.keySet();
    }

    /**
     * A float32 array holding the tensor, in {@code manager}; fails naming the tensor if absent or mis-shaped. The
     * tensor's mapping and its converted copy are released as soon as the engine holds the values (see
     * {@link #adopt}): loading a model never holds more than one tensor beyond the model itself.
     */
    public NDArray load(NDManager manager, String name, long... expectedShape) {
        SafetensorsFile.Entry e = entry(name);
        checkShape(e, expectedShape);
        ByteBuffer mapped = e.file().map(e);
        ByteBuffer data = StoredValues.float32(e, mapped);
        if (data != mapped) {
            DirectBuffers.free(mapped); // converted: the mapping is no longer read
        }
        boolean zeroCopy = data == mapped && wrapsBuffers(manager) && recorded == null;
        NDArray array = zeroCopy
                // PyTorch computes straight from the mapped file (float32 as stored): the page cache is the only copy
                ? manager.create(data, new Shape(e.shape()), DataType.FLOAT32)
                : adopt(manager, data, new Shape(e.shape()));
        return record(array, name, e.shape(), false);
    }

    /**
     * An array of the engine's own holding {@code data}'s float32 values, {@code data} released. TensorFlow copies
     * the buffer into its own tensor; PyTorch wraps it without copying (the whole model would then live in the JVM's
     * direct memory, bounded by -Xmx unless told otherwise), so its array is copied into PyTorch's own memory first.
     * Training also needs that copy: it updates its arrays in place, and a mapping is read-only.
     */
    private static NDArray adopt(NDManager manager, ByteBuffer data, Shape shape) {
        NDArray array = manager.create(data, shape, DataType.FLOAT32);
        if (wrapsBuffers(manager)) {
            NDArray own = array.duplicate();
            array.close();
            array = own;
        }
        DirectBuffers.free(data);
        return array;
    }

    /** Whether {@code manager}'s engine computes on a direct buffer it is given rather than on a copy (PyTorch). */
    private static boolean wrapsBuffers(NDManager manager) {
        return "PyTorch".equals(manager.getEngine().getEngineName());
    }

    /**
     * The transpose of a tensor read as a matrix [shape[0], rest], as a contiguous float32 array [rest, shape[0]]
     * in {@code manager}: a Linear weight [out, in] becomes [in, out]. The transpose is done here, in Java,
     * because PyTorch's copy of a transposed view keeps the view's strides, and a GEMM against such a weight
     * takes the slow path (13 against 7.5 ms for OPT's LM head at batch 1). Written into a direct buffer of its
     * own (not a heap array the engine would copy into one more), released with the tensor's mapping once the
     * engine holds the values.
     */
    public NDArray loadTransposed(NDManager manager, String name, long... expectedShape) {
        SafetensorsFile.Entry e = entry(name);
        checkShape(e, expectedShape);
        long[] shape = e.shape();
        int rows = Math.toIntExact(shape[0]);
        long rest = 1;
        for (int i = 1; i < shape.length; i++) {
            rest *= shape[i];
        }
        int cols = Math.toIntExact(rest);
        ByteBuffer mapped = e.file().map(e);
        StoredValues.Elements src = StoredValues.elements(e, mapped); // read and converted straight from the mapping: no float32 copy of the source
        ByteBuffer out = ByteBuffer.allocateDirect(Math.multiplyExact(Math.multiplyExact(rows, cols), 4)).order(ByteOrder.LITTLE_ENDIAN);
        FloatBuffer dst = out.asFloatBuffer();
        final int block = 64;
        for (int r0 = 0; r0 < rows; r0 += block) {
            int r1 = Math.min(rows, r0 + block);
            for (int c0 = 0; c0 < cols; c0 += block) {
                int c1 = Math.min(cols, c0 + block);
                for (int r = r0; r < r1; r++) {
                    long base = (long) r * cols;
                    for (int c = c0; c < c1; c++) {
                        dst.put(c * rows + r, src.get((int) (base + c)));
                    }
                }
            }
        }
        DirectBuffers.free(mapped);
        return record(adopt(manager, out, new Shape(cols, rows)), name, shape, true);
    }

    /**
     * The rows of a matrix tensor [rows, dim], read in Java straight from the memory-mapped checkpoint and converted
     * to float32 as they are read: an embedding table costs only the pages of the rows looked up (the page cache,
     * not the heap or direct memory; 515 MB of float32 for OPT-2.7b's 50272 x 2560 table otherwise).
     */
    public Rows rows(String name, long rows, long dim) {
        SafetensorsFile.Entry e = entry(name);
        checkShape(e, new long[] {rows, dim});
        ByteBuffer mapped = e.file().map(e);
        return new Rows(StoredValues.elements(e, mapped), mapped, e.dtype());
    }

    /**
     * A tensor's values read in Java from its mapping (see {@link #rows}). An embedding table keeps its rows open as
     * long as the model lives; a loader that reads a tensor once closes them, which unmaps it at once.
     */
    public static final class Rows implements AutoCloseable {
        private final StoredValues.Elements elements;
        private final ByteBuffer mapping;
        private final String dtype;

        private Rows(StoredValues.Elements elements, ByteBuffer mapping, String dtype) {
            this.elements = elements;
            this.mapping = mapping;
            this.dtype = dtype;
        }

        /** The safetensors type the values are stored in (F32, BF16, F16, F64). */
        public String dtype() {
            return dtype;
        }

        /** The raw little-endian mapping (of {@link #dtype} values), to be read only. */
        public ByteBuffer mapping() {
            return mapping;
        }

        /** Unmaps the tensor: nothing may read these rows afterwards. */
        @Override
        public void close() {
            DirectBuffers.free(mapping);
        }

        /** Copies {@code length} values from {@code from} (row-major) into {@code dst} at {@code offset}. */
        public void get(int from, float[] dst, int offset, int length) {
            for (int i = 0; i < length; i++) {
                dst[offset + i] = elements.get(from + i);
            }
        }

        /** Adds {@code length} values from {@code from} to {@code dst} at {@code offset}. */
        public void add(int from, float[] dst, int offset, int length) {
            for (int i = 0; i < length; i++) {
                dst[offset + i] += elements.get(from + i);
            }
        }
    }

    /** The tensor as a float32 buffer (memory-mapped when the checkpoint stores F32; converted off-heap otherwise). */
    public FloatBuffer floats(String name, long... expectedShape) {
        SafetensorsFile.Entry e = entry(name);
        checkShape(e, expectedShape);
        ByteBuffer mapped = e.file().map(e);
        ByteBuffer data = StoredValues.float32(e, mapped);
        if (data != mapped) {
            DirectBuffers.free(mapped);
        }
        return data.asFloatBuffer();
    }

    private SafetensorsFile.Entry entry(String name) {
        SafetensorsFile.Entry e = entries.get(name);
        if (e == null) {
            throw new IllegalArgumentException("checkpoint " + dir + " has no tensor '" + name + "'" + nearby(name));
        }
        return e;
    }

    private String nearby(String name) {
        int dot = name.lastIndexOf('.');
        String prefix = dot > 0 ? name.substring(0, dot) : name;
        List<String> similar = new ArrayList<>();
        for (String k : entries.keySet()) {
            if (k.startsWith(prefix) && similar.size() < 5) {
                similar.add(k);
            }
        }
        return similar.isEmpty() ? "" : " (tensors under " + prefix + ": " + similar + ")";
    }

    private static void checkShape(SafetensorsFile.Entry e, long[] expected) {
        if (expected != null && expected.length > 0 && !Arrays.equals(e.shape(), expected)) {
            throw new IllegalArgumentException("tensor '" + e.name() + "' has shape " + Arrays.toString(e.shape())
                    + " but the config implies " + Arrays.toString(expected));
        }
    }

    @Override
    public void close() {
        if (!owner) {
            return;
        }
        for (SafetensorsFile f : files) {
            try {
                f.close();
            } catch (IOException ex) {
                throw new UncheckedIOException(ex);
            }
        }
    }
}
