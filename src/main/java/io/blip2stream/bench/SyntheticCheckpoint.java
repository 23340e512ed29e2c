package io.blip2stream.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.model.weights.Blip2WeightTree.Role;
import io.blip2stream.model.weights.Blip2WeightTree.Tensor;
import io.blip2stream.model.weights.Blip2WeightTree;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Writes a BLIP-2 OPT checkpoint with random weights in the Hugging Face layout, at named sizes, for benchmarks
 * and memory measurements of models that cannot be downloaded here. Weights are N(0, 1/fan_in) (layer-norm
 * weights 1, biases 0), so activations stay finite; the captions are noise.
 */
public final class SyntheticCheckpoint {

    /** Shapes: vision (hidden, intermediate, layers, heads, patch), Q-Former (hidden, layers, heads, intermediate),
     *  queries, OPT (hidden, layers, heads, ffn, vocab, word_embed_proj_dim, pre-LN). */
    public enum Size {
        TINY(64, 128, 2, 4, 14, 64, 4, 4, 128, 8, 64, 2, 4, 128, 401, 64, true),
        SMALL(768, 3072, 12, 12, 16, 768, 12, 12, 3072, 32, 768, 12, 12, 3072, 50272, 768, true),
        BASE(1024, 4096, 24, 16, 14, 768, 12, 12, 3072, 32, 1024, 24, 16, 4096, 50272, 512, false),
        OPT_2_7B(1408, 6144, 39, 16, 14, 768, 12, 12, 3072, 32, 2560, 32, 32, 10240, 50272, 2560, true);

        final int vHidden, vInter, vLayers, vHeads, patch, qHidden, qLayers, qHeads, qInter, queries;
        final int tHidden, tLayers, tHeads, tFfn, vocab, wordEmbedProjDim;
        final boolean preLn;

        Size(int vHidden, int vInter, int vLayers, int vHeads, int patch, int qHidden, int qLayers, int qHeads, int qInter,
             int queries, int tHidden, int tLayers, int tHeads, int tFfn, int vocab, int wordEmbedProjDim, boolean preLn) {
            this.vHidden = vHidden;
            this.vInter = vInter;
            this.vLayers = vLayers;
            this.vHeads = vHeads;
            this.patch = patch;
            this.qHidden = qHidden;
            this.qLayers = qLayers;
            this.qHeads = qHeads;
            this.qInter = qInter;
            this.queries = queries;
            this.tHidden = tHidden;
            this.tLayers = tLayers;
            this.tHeads = tHeads;
            this.tFfn = tFfn;
            this.vocab = vocab;
            this.wordEmbedProjDim = wordEmbedProjDim;
            this.preLn = preLn;
        }

        public static Size parse(String s) {
            return valueOf(s.toUpperCase(Locale.ROOT).replace('-', '_').replace('.', '_'));
        }
    }

    private SyntheticCheckpoint() {}

    /**
     * @param dtype F32 or BF16
     * @return the number of parameters written
     */
    public static long write(Path dir, Size s, String dtype, long seed) throws IOException {
        Files.createDirectories(dir);
        List<Tensor> tensors = tensors(s);
        int bytes = switch (dtype) {
            case "F32" -> 4;
            case "BF16" -> 2;
            default -> throw new IllegalArgumentException("dtype must be F32 or BF16");
        };
        ObjectMapper m = new ObjectMapper();
        writeConfig(dir, s, m);
        // shards of at most 2 GB, as transformers writes them
        List<List<Tensor>> shards = new ArrayList<>();
        long limit = 2L << 30;
        long cur = 0;
        for (Tensor t : tensors) {
            long b = t.numel() * bytes;
            if (shards.isEmpty() || cur + b > limit) {
                shards.add(new ArrayList<>());
                cur = 0;
            }
            shards.get(shards.size() - 1).add(t);
            cur += b;
        }
        ObjectNode index = m.createObjectNode();
        index.putObject("metadata");
        ObjectNode map = index.putObject("weight_map");
        SplittableRandom rng = new SplittableRandom(seed);
        long params = 0;
        for (int i = 0; i < shards.size(); i++) {
            String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
            params += writeShard(dir.resolve(name), shards.get(i), dtype, bytes, rng, m);
            for (Tensor t : shards.get(i)) {
                map.put(t.name(), name);
            }
        }
        m.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("model.safetensors.index.json").toFile(), index);
        try (InputStream in = SyntheticCheckpoint.class.getResourceAsStream("/synthetic/tokenizer.json")) {
            Files.write(dir.resolve("tokenizer.json"), in.readAllBytes());
        }
        Files.writeString(dir.resolve("preprocessor_config.json"), "{\"do_convert_rgb\":true,\"do_normalize\":true,"
                + "\"do_rescale\":true,\"do_resize\":true,\"image_mean\":[0.48145466,0.4578275,0.40821073],"
                + "\"image_std\":[0.26862954,0.26130258,0.27577711],\"resample\":3,\"rescale_factor\":0.00392156862745098,"
                + "\"size\":{\"height\":224,\"width\":224}}");
        return params;
    }

    private static long writeShard(Path file, List<Tensor> tensors, String dtype, int bytes, SplittableRandom rng,
                                   ObjectMapper m) throws IOException {
        ObjectNode header = m.createObjectNode();
        header.putObject("__metadata__").put("format", "pt");
        long off = 0;
        for (Tensor t : tensors) {
            ObjectNode o = header.putObject(t.name());
            o.put("dtype", dtype);
            var sh = o.putArray("shape");
            for (long d : t.shape()) {
                sh.add(d);
            }
            long len = t.numel() * bytes;
            o.putArray("data_offsets").add(off).add(off + len);
            off += len;
        }
        byte[] json = m.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int pad = (8 - json.length % 8) % 8;
        long params = 0;
        try (OutputStream out = new java.io.BufferedOutputStream(Files.newOutputStream(file), 1 << 20)) {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(json.length + pad).array());
            out.write(json);
            for (int i = 0; i < pad; i++) {
                out.write(' ');
            }
            ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
            for (Tensor t : tensors) {
                long n = t.numel();
                params += n;
                boolean embedding = t.role() == Role.EMBEDDING || t.role() == Role.VISION_POSITIONS;
                double std = embedding ? 0.02 : 1.0 / Math.sqrt(t.shape()[t.shape().length - 1]);
                for (long k = 0; k < n; k++) {
                    float v = switch (t.role()) {
                        case NORM_WEIGHT -> 1f;
                        case BIAS, NORM_BIAS -> 0f;
                        default -> (float) (gaussian(rng) * std);
                    };
                    if (bytes == 4) {
                        buf.putFloat(v);
                    } else {
                        buf.putShort((short) (Float.floatToIntBits(v) >>> 16));
                    }
                    if (!buf.hasRemaining()) {
                        out.write(buf.array(), 0, buf.position());
                        buf.clear();
                    }
                }
            }
            out.write(buf.array(), 0, buf.position());
        }
        return params;
    }

    /** A cheap approximately normal draw (sum of uniforms): speed matters for billions of values. */
    private static double gaussian(SplittableRandom r) {
        return (r.nextDouble() + r.nextDouble() + r.nextDouble() - 1.5) * 2.0;
    }

    /** Parameters by part: vision, qformer (with the queries and the projection), lm_layers, lm_embeddings, lm_other. */
    public static java.util.Map<String, Long> parameterCounts(Size s) {
        java.util.Map<String, Long> out = new java.util.LinkedHashMap<>();
        for (Tensor t : tensors(s)) {
            String part;
            if (t.name().startsWith("vision_model")) {
                part = "vision";
            } else if (t.name().startsWith("qformer") || t.name().equals("query_tokens") || t.name().startsWith("language_projection")) {
                part = "qformer";
            } else if (t.name().contains(".layers.")) {
                part = "lm_layers";
            } else if (t.name().contains("embed_tokens")) {
                part = "lm_embeddings";
            } else {
                part = "lm_other";
            }
            out.merge(part, t.numel(), Long::sum);
        }
        return out;
    }

    /** The shapes of a size, for FLOP counts: vision (hidden, intermediate, layers, patch), OPT (hidden, layers, ffn, vocab). */
    public record Shapes(int vHidden, int vInter, int vLayers, int patch, int queries, int tHidden, int tLayers, int tFfn,
                         int vocab, int wordEmbedProjDim) {}

    public static Shapes shapes(Size s) {
        return new Shapes(s.vHidden, s.vInter, s.vLayers, s.patch, s.queries, s.tHidden, s.tLayers, s.tFfn, s.vocab, s.wordEmbedProjDim);
    }

    /** A Blip2ForConditionalGeneration with OPT at this size, images of 224 pixels. */
    private static List<Tensor> tensors(Size s) {
        return Blip2WeightTree.tensors(new Blip2WeightTree.Shapes(s.patch, 224 / s.patch, s.vHidden, s.vInter, s.vLayers,
                s.queries, s.qHidden, s.qInter, s.qLayers, 2, 0, 0, 0,
                s.tHidden, s.tFfn, s.tLayers, s.vocab, 2048, s.wordEmbedProjDim, s.preLn), true, false);
    }

    private static void writeConfig(Path dir, Size s, ObjectMapper m) throws IOException {
        Map<String, Object> vision = new LinkedHashMap<>();
        vision.put("hidden_size", s.vHidden);
        vision.put("intermediate_size", s.vInter);
        vision.put("num_hidden_layers", s.vLayers);
        vision.put("num_attention_heads", s.vHeads);
        vision.put("patch_size", s.patch);
        vision.put("image_size", 224);
        vision.put("layer_norm_eps", 1e-6);
        vision.put("qkv_bias", false);
        Map<String, Object> qformer = new LinkedHashMap<>();
        qformer.put("hidden_size", s.qHidden);
        qformer.put("num_hidden_layers", s.qLayers);
        qformer.put("num_attention_heads", s.qHeads);
        qformer.put("intermediate_size", s.qInter);
        qformer.put("encoder_hidden_size", s.vHidden);
        qformer.put("cross_attention_frequency", 2);
        Map<String, Object> text = new LinkedHashMap<>();
        text.put("model_type", "opt");
        text.put("hidden_size", s.tHidden);
        text.put("num_hidden_layers", s.tLayers);
        text.put("num_attention_heads", s.tHeads);
        text.put("ffn_dim", s.tFfn);
        text.put("vocab_size", s.vocab);
        text.put("word_embed_proj_dim", s.wordEmbedProjDim);
        text.put("do_layer_norm_before", s.preLn);
        text.put("max_position_embeddings", 2048);
        text.put("tie_word_embeddings", true);
        Map<String, Object> cfg = new LinkedHashMap<>();
        cfg.put("architectures", List.of("Blip2ForConditionalGeneration"));
        cfg.put("model_type", "blip-2");
        cfg.put("num_query_tokens", s.queries);
        cfg.put("vision_config", vision);
        cfg.put("qformer_config", qformer);
        cfg.put("text_config", text);
        cfg.put("synthetic", "random weights written by blip2-stream; captions are noise");
        m.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("config.json").toFile(), cfg);
    }
}
