package io.blip2stream.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.bench.Bench;
import io.blip2stream.bench.SyntheticCheckpoint;
import io.blip2stream.engine.Engines;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** The {@code bench} command: measures each stage, memory and load time at a named size with random weights. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Measure the model at a named size with random weights on each engine, against the machine's limits.",
                "The limits (matmul GFLOP/s, memory GB/s) are measured in the same run. Sizes: tiny, small (ViT-B/16, "
                        + "Q-Former 12x768, OPT-125m), base (ViT-L/14, OPT-350m), opt-2.7b (blip2-opt-2.7b's shapes, a bf16 "
                        + "checkpoint of 7.0 GB; --estimate: the memory it needs, from its shapes, without running it)."})
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--size", defaultValue = "small", description = "tiny, small, base or opt-2.7b (default small)")
    String size;

    @Option(names = "--engine", defaultValue = "all", description = "tensorflow, pytorch or all (default)")
    String engine;

    @Option(names = "--dtype", paramLabel = "DTYPE", defaultValue = "float32",
            description = "the precision the weights are kept in: float32 (default), bfloat16, int8 or auto; one per process, "
                    + "so that the peak RSS is the dtype's")
    String dtype;

    @Option(names = "--estimate", description = "opt-2.7b: print the memory estimate from its shapes instead of running it")
    boolean estimate;

    @Option(names = "--runs", defaultValue = "5", description = "runs per figure; medians are reported")
    int runs;

    @Option(names = "--steps", defaultValue = "16", description = "decode steps per run")
    int steps;

    @Option(names = "--dir", defaultValue = "data/bench", description = "where the synthetic checkpoints are kept")
    Path dir;

    @Option(names = "--json", description = "one JSON object per engine and size, a line each")
    boolean json;

    @Option(names = "--cluster-cipher", description = "instead: what sealing the cluster's state costs per visual-prompt cache hit "
            + "and per request-state write, beside the Hazelcast operation between two members and a copy of the bytes (microseconds, medians)")
    boolean clusterCipher;

    @Option(names = "--iterations", defaultValue = "2000", description = "operations per run with --cluster-cipher (default 2000)")
    int iterations;

    @Override
    public Integer call() throws Exception {
        if (clusterCipher) {
            return cipher();
        }
        SyntheticCheckpoint.Size s;
        try {
            s = SyntheticCheckpoint.Size.parse(size);
        } catch (IllegalArgumentException e) {
            throw new Main.UserError("unknown size '" + size + "' (tiny, small, base, opt-2.7b)");
        }
        ModelOptions.checkDtype(dtype);
        ObjectMapper mapper = new ObjectMapper();
        if (s == SyntheticCheckpoint.Size.OPT_2_7B && estimate) {
            var m = Bench.memoryEstimate(s);
            System.out.println(json ? mapper.writeValueAsString(m) : mapper.writerWithDefaultPrettyPrinter().writeValueAsString(m));
            return 0;
        }
        List<Engines.Kind> engines = engine.equals("all") ? List.of(Engines.Kind.TENSORFLOW, Engines.Kind.PYTORCH)
                : List.of(Engines.Kind.parse(engine));
        Path checkpoint = Bench.checkpoint(dir, s);
        Bench.BandwidthProbe bandwidth = new Bench.BandwidthProbe(1L << 30);
        List<Bench.Result> results = new ArrayList<>();
        for (Engines.Kind k : engines) {
            Bench.Peaks peaks;
            try (var m = Engines.newManager(k)) {
                peaks = Bench.peaks(m, 1024, runs);
            }
            Bench.Result r = Bench.run(s, checkpoint, k, dtype, runs, steps, peaks, bandwidth);
            results.add(r);
            if (json) {
                System.out.println(mapper.writeValueAsString(r));
            }
        }
        if (!json) {
            print(results);
        }
        return 0;
    }

    private int cipher() throws Exception {
        if (runs < 1 || iterations < 10) {
            throw new Main.UserError("--runs must be at least 1 and --iterations at least 10");
        }
        var rows = io.blip2stream.bench.ClusterCipherBench.run(runs, iterations);
        ObjectMapper mapper = new ObjectMapper();
        if (json) {
            for (var r : rows) {
                System.out.println(mapper.writeValueAsString(io.blip2stream.bench.ClusterCipherBench.json(r)));
            }
            return 0;
        }
        System.out.printf(Locale.ROOT, "sealing the cluster's state (AES-256-GCM): %d runs of %d operations, medians in microseconds%n", runs, iterations);
        System.out.printf(Locale.ROOT, "%-34s %9s %10s %14s %10s %10s%n", "operation", "bytes", "seal/open", "Hazelcast op", "copy", "seal/op");
        for (var r : rows) {
            System.out.printf(Locale.ROOT, "%-34s %,9d %10.1f %14.1f %10.2f %9.0f%%%n", r.operation(), r.bytes(), r.sealUs(), r.mapUs(),
                    r.copyUs(), 100 * r.overhead());
        }
        return 0;
    }

    private static void print(List<Bench.Result> rs) {
        Bench.Result a = rs.get(0);
        System.out.printf(Locale.ROOT, "size %s: %,d parameters (%.2f GB float32); dtype %s; %d runs, medians%n",
                a.size(), a.parameters(), a.weightGb(), a.dtype(), a.runs());
        String fmt = "%-62s" + " %14s".repeat(rs.size()) + "%n";
        List<String> head = new ArrayList<>(List.of(""));
        rs.forEach(r -> head.add(r.engine()));
        System.out.printf(fmt, head.toArray());
        row(fmt, rs, "model load (ms)", r -> r.loadMs());
        row(fmt, rs, "peak RSS of the process (MB)", r -> r.peakRssMb());
        row(fmt, rs, "matmul 1024^3 (GFLOP/s), float32 (the engine)", r -> r.matmulGflops());
        row(fmt, rs, "matmul 1024^3 (GFLOP/s), bfloat16 (oneDNN, packed)", r -> r.bf16MatmulGflops());
        row(fmt, rs, io.blip2stream.model.nn.LowPrecisionWeight.int8Packed() ? "matmul 1024^3 (GFLOP/s), int8 weights (oneDNN, packed)"
                : "int8 weight streaming, 8 x 4096^2 (GFLOP/s)", r -> r.int8Gflops());
        row(fmt, rs, "memory bandwidth (GB/s, best of 5 passes, between decode runs)", r -> r.bandwidthGbs());
        row(fmt, rs, "vision images/s, batch 1", r -> r.visionImagesPerSecB1());
        row(fmt, rs, "vision images/s, batch 8", r -> r.visionImagesPerSecB8());
        row(fmt, rs, "vision GFLOP/s at batch 8 (of its dtype's matmul)", r -> r.visionGflopsB8() + " (" + pct(r.visionOfMatmul()) + ")");
        row(fmt, rs, "Q-Former ms, batch 1", r -> r.qformerMsB1());
        row(fmt, rs, "prefill ms (GFLOP/s, of its dtype's matmul)", r -> r.prefillMs() + " (" + r.prefillGflops() + ", " + pct(r.prefillOfMatmul()) + ")");
        row(fmt, rs, "time to first token ms, batch 1", r -> r.timeToFirstTokenMs());
        for (int b : a.decodeStepMs().keySet()) {
            row(fmt, rs, "decode step ms, batch " + b, r -> r.decodeStepMs().get(b));
            row(fmt, rs, "tokens/s, batch " + b, r -> r.tokensPerSec().get(b));
        }
        row(fmt, rs, "decode bound ms (weights / bandwidth)", r -> r.decodeBoundMs());
        row(fmt, rs, "decode batch 1: bound / measured", r -> pct(r.decodeB1OfBound()));
        row(fmt, rs, "tokens/s batch 8 / batch 1", r -> r.decodeB8OverB1() + "x");
    }

    private static String pct(double f) {
        return String.format(Locale.ROOT, "%.0f%%", f * 100);
    }

    private static void row(String fmt, List<Bench.Result> rs, String label, java.util.function.Function<Bench.Result, Object> f) {
        List<Object> cells = new ArrayList<>(List.of(label));
        rs.forEach(r -> cells.add(String.valueOf(f.apply(r))));
        System.out.printf(fmt, cells.toArray());
    }
}
