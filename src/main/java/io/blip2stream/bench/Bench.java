package io.blip2stream.bench;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.weights.Precision;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The benchmark behind {@code bench}: a model of random weights at a named size on one engine, measured against
 * the machine's limits measured in the same run: the engine's matmul throughput (GFLOP/s) bounds encoding and
 * prefill; the memory bandwidth (GB/s) over the weight bytes a decode step reads bounds decoding. Every figure is
 * the median of several runs.
 */
public final class Bench {

    /** One engine at one size. Times in milliseconds. */
    public record Result(String size, String engine, String dtype, int runs, long parameters, double weightGb, double loadMs,
                         double peakRssMb,
                         double matmulGflops, double bf16MatmulGflops, double int8Gflops, double bandwidthGbs,
                         double visionImagesPerSecB1, double visionImagesPerSecB8, double visionGflopsB8, double visionOfMatmul,
                         double qformerMsB1, double timeToFirstTokenMs, double prefillMs, double prefillGflops, double prefillOfMatmul,
                         Map<Integer, Double> decodeStepMs, Map<Integer, Double> tokensPerSec,
                         double decodeBoundMs, double decodeB1OfBound, double decodeB8OverB1) {}

    /**
     * The machine's compute limits per dtype, measured in the same run (each the best of a second of calls): the
     * engine's float32 matmul; oneDNN's
     * bfloat16 matmul on a packed weight (0 where it does not run); int8 as int8 weights run here: oneDNN's matmul
     * on a packed int8 weight (widened to bfloat16 as it multiplies) where int8 is packed, else the weight-streaming
     * kernel at 8 rows, the most a decode step gives it (float32 FMAs: its own ceiling). GFLOP/s.
     */
    public record Peaks(double float32, double bfloat16, double int8) {
        /** The limit of products in {@code p}: its own kernel's where measured, else the float32 GEMM's. */
        double of(Precision p) {
            return switch (p) {
                case BFLOAT16 -> bfloat16 > 0 ? bfloat16 : float32;
                case INT8 -> io.blip2stream.model.nn.LowPrecisionWeight.int8Packed() && int8 > 0 ? int8 : float32;
                case FLOAT32 -> float32;
            };
        }
    }

    private Bench() {}

    /** {@link Peaks}: f32 from {@link #matmulGflops}, the others n x n by n x n (bf16, packed int8) or 8 x 4096 by 4096 x 4096 (streamed int8). */
    public static Peaks peaks(NDManager m, int n, int runs) {
        return new Peaks(matmulGflops(m, n, runs), bf16MatmulGflops(n, runs),
                io.blip2stream.model.nn.LowPrecisionWeight.int8Packed() ? int8MatmulGflops(n, runs) : int8StreamingGflops(runs));
    }

    /** oneDNN's matmul, n rows by a packed n x n int8 weight with a scale per output: the best GFLOP/s. */
    public static double int8MatmulGflops(int n, int runs) {
        java.nio.ByteBuffer w = java.nio.ByteBuffer.allocateDirect(n * n);
        SplittableRandom rnd = new SplittableRandom(2);
        for (int i = 0; i < n * n; i++) {
            w.put(i, (byte) (rnd.nextInt(255) - 127));
        }
        float[] scales = new float[n];
        Arrays.fill(scales, 0.01f);
        float[] x = new float[n * n];
        Arrays.fill(x, 0.5f);
        try (var packed = io.blip2stream.model.nn.OneDnnWeight.packInt8(w, scales, n, n)) {
            return 2.0 * n * n * n / bestSeconds(runs, () -> packed.multiply(x, n)) / 1e9;
        } finally {
            io.blip2stream.model.weights.DirectBuffers.free(w);
        }
    }

    /** oneDNN's bfloat16 matmul, n rows by a packed n x n weight: median GFLOP/s, or 0 where oneDNN does not run. */
    public static double bf16MatmulGflops(int n, int runs) {
        if (!io.blip2stream.model.nn.OneDnnWeight.available()) {
            return 0;
        }
        java.nio.ByteBuffer w = java.nio.ByteBuffer.allocateDirect(n * n * 2).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        SplittableRandom rnd = new SplittableRandom(2);
        for (int i = 0; i < n * n; i++) {
            w.putShort(2 * i, (short) (0x3c00 | rnd.nextInt(256))); // bfloat16 values near 0.01
        }
        float[] x = new float[n * n];
        Arrays.fill(x, 0.5f);
        try (var packed = io.blip2stream.model.nn.OneDnnWeight.pack(w, n, n)) {
            return 2.0 * n * n * n / bestSeconds(runs, () -> packed.multiply(x, n)) / 1e9;
        } finally {
            io.blip2stream.model.weights.DirectBuffers.free(w);
        }
    }

    /** The int8 weight-streaming kernel at 8 rows of a 4096 x 4096 weight: median GFLOP/s (0 on the scalar fallback). */
    public static double int8StreamingGflops(int runs) {
        if (!io.blip2stream.model.nn.WeightStreaming.vectorized()) {
            return 0;
        }
        int n = 4096;
        int rows = 8;
        java.nio.ByteBuffer w = java.nio.ByteBuffer.allocateDirect(n * n).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < n * n; i++) {
            w.put(i, (byte) (rnd.nextInt(255) - 127));
        }
        float[] scales = new float[n * n / 64];
        Arrays.fill(scales, 0.01f);
        float[] x = new float[rows * n];
        Arrays.fill(x, 0.5f);
        float[] y = new float[rows * n];
        try {
            double seconds = bestSeconds(runs, () -> io.blip2stream.model.nn.WeightStreaming.get().multiply(Precision.INT8, w, scales, 64, n, n, x, rows, y));
            return 2.0 * rows * n * n / seconds / 1e9;
        } finally {
            io.blip2stream.model.weights.DirectBuffers.free(w);
        }
    }

    /** Engine matmul throughput: the best of an n x n by n x n float32 product, repeated for {@link #bestSeconds}. */
    public static double matmulGflops(NDManager m, int n, int runs) {
        NDArray a = m.randomUniform(-1, 1, new Shape(n, n));
        NDArray b = m.randomUniform(-1, 1, new Shape(n, n));
        double seconds = bestSeconds(runs, () -> {
            NDArray c = a.matMul(b);
            c.toFloatArray(); // waits for it
            c.close();
        });
        a.close();
        b.close();
        return 2.0 * n * n * n / seconds / 1e9;
    }

    /**
     * The fastest of at least {@code runs} + 2 calls and of a second's worth: a peak is what the machine can do,
     * and here the first calls of a process run at a third of it (threads starting, clocks rising: 44, 47, then 144
     * GFLOP/s for the same float32 product), so a median of a few calls measured the warm-up, not the limit.
     */
    static double bestSeconds(int runs, Runnable call) {
        double best = Double.MAX_VALUE;
        long start = System.nanoTime();
        for (int i = 0; i < runs + 2 || System.nanoTime() - start < 1_000_000_000L; i++) {
            long t0 = System.nanoTime();
            call.run();
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return best;
    }

    /**
     * Memory read bandwidth: one thread per core sums its share of large long arrays into four independent
     * accumulators, so that the loop waits on memory, not on additions (an int sum, or a float one, reads 26 GB/s here
     * where this loop and a C loop read 54-59 GB/s). A sample is the best of several passes, the threads released
     * together for each pass: a single pass, or one that includes starting threads, reads less than the machine can.
     * The arrays are kept, so that samples can be taken between other measurements; in GB/s.
     */
    public static final class BandwidthProbe {
        private static final int PASSES = 5;
        private final long[][] data;
        private final long[] sink;

        public BandwidthProbe(long bytes) throws InterruptedException {
            int threads = Runtime.getRuntime().availableProcessors();
            data = new long[threads][(int) (bytes / 8 / threads / 4 * 4)];
            sink = new long[threads];
            for (long[] d : data) {
                Arrays.fill(d, 1);
            }
            sample(); // the first sample compiles the loop
        }

        public double sample() throws InterruptedException {
            int n = data.length;
            java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(n + 1);
            java.util.concurrent.CyclicBarrier end = new java.util.concurrent.CyclicBarrier(n + 1);
            Thread[] ts = new Thread[n];
            for (int k = 0; k < n; k++) {
                final int kk = k;
                ts[k] = new Thread(() -> {
                    try {
                        for (int p = 0; p < PASSES; p++) {
                            start.await();
                            sink[kk] += sum(data[kk]);
                            end.await();
                        }
                    } catch (Exception e) {
                        Thread.currentThread().interrupt();
                    }
                });
                ts[k].start();
            }
            double best = 0;
            try {
                for (int p = 0; p < PASSES; p++) {
                    start.await();
                    long t0 = System.nanoTime();
                    end.await();
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    best = Math.max(best, (double) data[0].length * 8 * n / seconds / 1e9);
                }
            } catch (java.util.concurrent.BrokenBarrierException e) {
                throw new IllegalStateException(e);
            }
            for (Thread th : ts) {
                th.join();
            }
            return best;
        }

        private static long sum(long[] d) {
            long a = 0;
            long b = 0;
            long c = 0;
            long e = 0;
            for (int i = 0; i < d.length; i += 4) {
                a += d[i];
                b += d[i + 1];
                c += d[i + 2];
                e += d[i + 3];
            }
            return a + b + c + e;
        }

        /** The median of {@code runs} samples. */
        public double median(int runs) throws InterruptedException {
            List<Double> t = new ArrayList<>();
            for (int r = 0; r < runs; r++) {
                t.add(sample());
            }
            return Bench.median(t);
        }
    }

    /** This process's peak resident memory (VmHWM), in MB; 0 where /proc is missing. */
    public static double peakRssMb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1e3;
                }
            }
        } catch (Exception e) {
            // not Linux
        }
        return 0;
    }

    /**
     * Bytes a decode step reads per decoder or LM-head weight in {@code p}: int8 streamed adds a float32 scale per 64
     * values; packed, one per output (4 bytes per 2560 or more weights here), counted as none: the stricter bound.
     */
    static double bytesPerWeight(Precision p) {
        return switch (p) {
            case FLOAT32 -> 4;
            case BFLOAT16 -> 2;
            case INT8 -> io.blip2stream.model.nn.LowPrecisionWeight.int8Packed() ? 1 : 1 + 4.0 / 64;
        };
    }

    /**
     * @param dtype the precision the weights are kept in (float32, bfloat16, int8, auto); one per process for a
     *              meaningful peak RSS
     */
    public static Result run(SyntheticCheckpoint.Size size, Path dir, Engines.Kind engine, String dtype, int runs, int steps,
                             Peaks peaks, BandwidthProbe bandwidth) throws Exception {
        var shapes = SyntheticCheckpoint.shapes(size);
        Map<String, Long> params = SyntheticCheckpoint.parameterCounts(size);
        long total = params.values().stream().mapToLong(Long::longValue).sum();
        try (NDManager manager = Engines.newManager(engine)) {
            long l0 = System.nanoTime();
            Blip2Model model = Blip2Model.load(dir, manager, dtype);
            double loadMs = (System.nanoTime() - l0) / 1e6;
            Precision precision = model.precision();
            try (model) {
                SplittableRandom rnd = new SplittableRandom(1);
                int hw = 3 * model.processor().height() * model.processor().width();
                List<float[]> images = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    float[] px = new float[hw];
                    for (int j = 0; j < hw; j++) {
                        px[j] = (float) (rnd.nextDouble() * 4 - 2);
                    }
                    images.add(px);
                }
                // vision encoder at batch 1 and 8
                model.encodeImages(images.subList(0, 1), false); // warm up, at both batch sizes
                model.encodeImages(images, false);
                List<Double> v1 = new ArrayList<>();
                List<Double> q1 = new ArrayList<>();
                List<Double> v8 = new ArrayList<>();
                for (int r = 0; r < runs; r++) {
                    var f = model.encodeImages(images.subList(0, 1), false);
                    v1.add(f.visionNanos() / 1e6);
                    q1.add(f.qformerNanos() / 1e6);
                }
                for (int r = 0; r < Math.max(1, runs / 2); r++) {
                    v8.add(model.encodeImages(images, false).visionNanos() / 1e6);
                }
                double visionFlops = visionFlops(shapes);
                double visionMsB8 = median(v8);
                double visionGflopsB8 = 8 * visionFlops / (visionMsB8 / 1e3) / 1e9;
                // time to first token at batch 1: vision, Q-Former, prefill, the first token's logits
                Blip2Model.ImageFeatures f1 = model.encodeImages(images.subList(0, 1), false);
                float[] prompt = model.visualPrompt(f1, 0);
                List<Double> prefill = new ArrayList<>();
                for (int r = 0; r < runs; r++) {
                    long t0 = System.nanoTime();
                    try (DecoderSession s = model.generation().startSession(List.of(new GenerationRequest(prompt, null)), steps)) {
                        prefill.add((System.nanoTime() - t0) / 1e6);
                    }
                }
                double prefillMs = median(prefill);
                int promptLen = shapes.queries() + 1;
                double prefillFlops = 2.0 * (params.get("lm_layers") * (double) promptLen + (double) shapes.vocab() * shapes.wordEmbedProjDim());
                double ttft = median(v1) + median(q1) + prefillMs;
                // decode steps at batch 1, 8 and 32, interleaved round by round with a memory bandwidth sample, so
                // that a slow spell of this shared machine slows every figure of a round alike and the ratios hold
                // at opt-2.7b a batch of 32 takes minutes a round: 1 and 8 there
                int[] batches = size == SyntheticCheckpoint.Size.OPT_2_7B ? new int[] {1, 8} : new int[] {1, 8, 32};
                Map<Integer, List<Double>> per = new LinkedHashMap<>();
                List<Double> bandwidthSamples = new ArrayList<>();
                for (int b : batches) {
                    per.put(b, new ArrayList<>());
                    decodeSteps(model, prompt, b, steps, null); // warm-up: an engine's first steps at a new batch size are far slower
                }
                for (int r = 0; r < runs; r++) {
                    bandwidthSamples.add(bandwidth.sample());
                    for (int b : batches) {
                        decodeSteps(model, prompt, b, steps, per.get(b));
                    }
                }
                double roundBandwidth = median(bandwidthSamples);
                Map<Integer, Double> stepMs = new LinkedHashMap<>();
                Map<Integer, Double> tps = new LinkedHashMap<>();
                for (int b : batches) {
                    double ms = median(per.get(b));
                    stepMs.put(b, round(ms));
                    tps.put(b, round(b * 1000 / ms));
                }
                // a decode step reads every decoder weight and the LM head once, in the model's precision
                double stepBytes = bytesPerWeight(precision) * (params.get("lm_layers") + (double) shapes.vocab() * shapes.wordEmbedProjDim());
                double boundMs = stepBytes / (roundBandwidth * 1e9) * 1e3;
                // each against the limit of the dtype its products run in (the vision encoder: bfloat16 under int8)
                double visionPeak = peaks.of(precision.forVisionEncoder());
                double lmPeak = peaks.of(precision);
                return new Result(size.name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'), engine.djlName(), precision.id(),
                        runs, total, round(total * 4 / 1e9), round(loadMs), round(peakRssMb()), round(peaks.float32()),
                        round(peaks.bfloat16()), round(peaks.int8()), round(roundBandwidth),
                        round(1000 / median(v1)), round(8000 / visionMsB8), round(visionGflopsB8), round(visionGflopsB8 / visionPeak),
                        round(median(q1)), round(ttft), round(prefillMs), round(prefillFlops / (prefillMs / 1e3) / 1e9),
                        round(prefillFlops / (prefillMs / 1e3) / 1e9 / lmPeak), stepMs, tps, round(boundMs),
                        round(boundMs / stepMs.get(1)), round(tps.get(8) / tps.get(1)));
            }
        }
    }

    /** Multiply-adds of the ViT for one image, times two. */
    static double visionFlops(SyntheticCheckpoint.Shapes s) {
        double d = s.vHidden();
        double grid = 224 / s.patch();
        double tokens = grid * grid + 1;
        double patch = grid * grid * 3.0 * s.patch() * s.patch() * d;
        double perLayer = tokens * d * 3 * d + tokens * d * d + 2 * tokens * d * s.vInter() + 2 * tokens * tokens * d;
        return 2 * (patch + s.vLayers() * perLayer);
    }

    /** The memory a size needs in float32, without running it (the opt-2.7b row). */
    public static Map<String, Object> memoryEstimate(SyntheticCheckpoint.Size size) {
        Map<String, Long> params = SyntheticCheckpoint.parameterCounts(size);
        long total = params.values().stream().mapToLong(Long::longValue).sum();
        var s = SyntheticCheckpoint.shapes(size);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("size", size.name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'));
        m.put("parameters", total);
        m.put("parameters_by_part", params);
        m.put("weights_float32_gb", round(total * 4 / 1e9));
        m.put("decode_step_weight_gb", round(4.0 * (params.get("lm_layers") + (double) s.vocab() * s.wordEmbedProjDim()) / 1e9));
        // KV cache per token: 2 (K, V) x layers x hidden floats
        m.put("kv_cache_mb_per_token", round(2.0 * s.tLayers() * s.tHidden() * 4 / 1e6));
        return m;
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    /** One decode session of {@code steps} greedy steps at batch {@code b}; the step times (ms) go to {@code sink}, if any. */
    private static void decodeSteps(Blip2Model model, float[] prompt, int b, int steps, List<Double> sink) {
        List<GenerationRequest> reqs = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            reqs.add(new GenerationRequest(prompt, null));
        }
        try (DecoderSession s = model.generation().startSession(reqs, steps + 2)) {
            float[][] logits = s.promptLogits();
            for (int k = 0; k < steps; k++) {
                int[] next = new int[b];
                for (int i = 0; i < b; i++) {
                    next[i] = argmax(logits[i]);
                }
                long t0 = System.nanoTime();
                logits = s.step(next);
                if (sink != null && k >= 2) {
                    sink.add((System.nanoTime() - t0) / 1e6);
                }
            }
        }
    }

    static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        s.sort(Double::compare);
        int n = s.size();
        return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    /** Four significant digits (a tiny model's decode bound is a few microseconds: three decimals of a ms lose it). */
    static double round(double v) {
        if (v == 0 || Double.isNaN(v) || Double.isInfinite(v)) {
            return v;
        }
        return new java.math.BigDecimal(v).round(new java.math.MathContext(4)).doubleValue();
    }

    /**
     * The synthetic checkpoint of a size, written once under {@code root}: float32, except opt-2.7b, which is written
     * in bfloat16 as Salesforce/blip2-opt-2.7b is published (7.0 GB instead of 15.5).
     */
    public static Path checkpoint(Path root, SyntheticCheckpoint.Size size) throws Exception {
        boolean bf16 = size == SyntheticCheckpoint.Size.OPT_2_7B;
        Path dir = root.resolve(size.name().toLowerCase(java.util.Locale.ROOT).replace('_', '-') + (bf16 ? "-bf16" : "-f32"));
        if (!Files.exists(dir.resolve("model.safetensors.index.json"))) {
            SyntheticCheckpoint.write(dir, size, bf16 ? "BF16" : "F32", 1);
        }
        return dir;
    }
}
