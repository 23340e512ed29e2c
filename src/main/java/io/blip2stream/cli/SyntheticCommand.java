package io.blip2stream.cli;

import io.blip2stream.bench.SyntheticCheckpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** The {@code synthetic} command: writes a BLIP-2 OPT checkpoint with random weights at a named size. */
@Command(name = "synthetic", mixinStandardHelpOptions = true,
        description = "Write a BLIP-2 OPT checkpoint with random weights at a named size "
                + "(tiny, small, base, opt-2.7b) for benchmarks and memory measurements.")
final class SyntheticCommand implements Callable<Integer> {
    @Option(names = "--size", required = true, paramLabel = "SIZE", description = "tiny, small, base or opt-2.7b")
    String size;

    @Option(names = "--dtype", defaultValue = "bf16", paramLabel = "DTYPE", description = "f32 or bf16 (default)")
    String dtype;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "the random weights' seed (default 1)")
    long seed;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "the checkpoint folder to write (Hugging Face layout)")
    Path out;

    @Override
    public Integer call() throws Exception {
        SyntheticCheckpoint.Size s;
        try {
            s = SyntheticCheckpoint.Size.parse(size);
        } catch (IllegalArgumentException e) {
            throw new Main.UserError("unknown size '" + size + "' (tiny, small, base, opt-2.7b)");
        }
        String d = dtype.toUpperCase(Locale.ROOT);
        if (!d.equals("F32") && !d.equals("BF16")) {
            throw new Main.UserError("--dtype must be f32 or bf16");
        }
        long t0 = System.nanoTime();
        long params = SyntheticCheckpoint.write(out, s, d, seed);
        System.err.printf(Locale.ROOT, "wrote %s: %,d parameters as %s in %.1f s%n", out, params, d, (System.nanoTime() - t0) / 1e9);
        return 0;
    }
}
