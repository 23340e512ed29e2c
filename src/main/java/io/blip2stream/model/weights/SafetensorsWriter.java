package io.blip2stream.model.weights;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Writes float32 tensors to a {@code .safetensors} file that safetensors, transformers and numpy read. */
public final class SafetensorsWriter {
    private final Map<String, long[]> shapes = new LinkedHashMap<>();
    private final Map<String, float[]> data = new LinkedHashMap<>();

    public SafetensorsWriter put(String name, float[] values, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        if (n != values.length) {
            throw new IllegalArgumentException(name + ": shape holds " + n + " values, got " + values.length);
        }
        shapes.put(name, shape.clone());
        data.put(name, values);
        return this;
    }

    public void write(Path file) throws IOException {
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode header = mapper.createObjectNode();
        header.putObject("__metadata__").put("format", "pt");
        long offset = 0;
        for (Map.Entry<String, float[]> e : data.entrySet()) {
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", "F32");
            var s = t.putArray("shape");
            for (long d : shapes.get(e.getKey())) {
                s.add(d);
            }
            long len = e.getValue().length * 4L;
            t.putArray("data_offsets").add(offset).add(offset + len);
            offset += len;
        }
        byte[] json = mapper.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int pad = (8 - json.length % 8) % 8;
        try (OutputStream out = Files.newOutputStream(file)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(json.length + pad);
            out.write(len.array());
            out.write(json);
            for (int i = 0; i < pad; i++) {
                out.write(' ');
            }
            for (float[] v : data.values()) {
                ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                b.asFloatBuffer().put(v);
                out.write(b.array());
            }
        }
    }
}
