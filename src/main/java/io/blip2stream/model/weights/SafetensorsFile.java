package io.blip2stream.model.weights;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One {@code .safetensors} file, memory-mapped: an 8-byte little-endian header length, a JSON header
 * ({@code name -> {dtype, shape, data_offsets}}), then the raw tensor bytes. Each tensor is mapped on its own
 * when asked for, so files over 2 GiB work and nothing is copied onto the heap.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** Where one tensor lies in the file. */
    public record Entry(String name, String dtype, long[] shape, long begin, long end, SafetensorsFile file) {
        public long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    private final Path path;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, Entry> entries;

    private SafetensorsFile(Path path, FileChannel channel, long dataStart, Map<String, Entry> entries) {
        this.path = path;
        this.channel = channel;
        this.dataStart = dataStart;
        this.entries = entries;
    }

    public static SafetensorsFile open(Path path) throws IOException {
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ);
        try {
            long size = ch.size();
            if (size < 8) {
                throw new IOException(path + " is not a safetensors file (" + size + " bytes)");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0);
            long headerLen = lenBuf.flip().getLong();
            if (headerLen <= 0 || headerLen > MAX_HEADER || 8 + headerLen > size) {
                throw new IOException(path + " is not a safetensors file (header length " + headerLen + ")");
            }
            ByteBuffer hb = ByteBuffer.allocate((int) headerLen);
            readFully(ch, hb, 8);
            JsonNode header = MAPPER.readTree(new String(hb.array(), StandardCharsets.UTF_8));
            long dataStart = 8 + headerLen;
            Map<String, Entry> entries = new LinkedHashMap<>();
            SafetensorsFile file = new SafetensorsFile(path, ch, dataStart, entries);
            for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (e.getKey().equals("__metadata__")) {
                    continue;
                }
                JsonNode t = e.getValue();
                JsonNode s = t.get("shape");
                long[] shape = new long[s.size()];
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = s.get(i).asLong();
                }
                long begin = t.get("data_offsets").get(0).asLong();
                long end = t.get("data_offsets").get(1).asLong();
                Entry entry = new Entry(e.getKey(), t.get("dtype").asText(), shape, begin, end, file);
                long expected = entry.numel() * DType.of(entry.dtype(), path, e.getKey()).bytes;
                if (end - begin != expected || dataStart + end > size) {
                    throw new IOException(path + ": tensor " + e.getKey() + " has " + (end - begin)
                            + " bytes, expected " + expected);
                }
                entries.put(e.getKey(), entry);
            }
            return file;
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        while (b.hasRemaining()) {
            int n = ch.read(b, pos + b.position());
            if (n < 0) {
                throw new IOException("unexpected end of file");
            }
        }
    }

    public Path path() {
        return path;
    }

    public Map<String, Entry> entries() {
        return Collections.unmodifiableMap(entries);
    }

    /** The tensor's bytes, memory-mapped, little-endian. */
    public ByteBuffer map(Entry e) {
        try {
            return channel.map(FileChannel.MapMode.READ_ONLY, dataStart + e.begin(), e.end() - e.begin())
                    .order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException ex) {
            throw new java.io.UncheckedIOException("cannot map " + e.name() + " in " + path, ex);
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }

    /** The element types this reader converts to float32. */
    enum DType {
        F32(4), F16(2), BF16(2), F64(8);

        final int bytes;

        DType(int bytes) {
            this.bytes = bytes;
        }

        static DType of(String s, Path file, String tensor) throws IOException {
            try {
                return DType.valueOf(s);
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": tensor " + tensor + " has dtype " + s
                        + "; supported: F32, F16, BF16, F64");
            }
        }
    }
}
