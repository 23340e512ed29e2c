package io.blip2stream.bench;

import io.blip2stream.engine.Engines;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bench runs a model in the dtype asked for and reports it, with the bound for that dtype's bytes. */
class BenchTest {
    @TempDir
    Path dir;

    @Test
    void aTinyInt8RunReportsItsDtypeBoundAndMemory() throws Exception {
        Path checkpoint = Bench.checkpoint(dir, SyntheticCheckpoint.Size.TINY);
        Bench.BandwidthProbe bandwidth = new Bench.BandwidthProbe(64L << 20);
        double gbs = bandwidth.sample();
        assertTrue(gbs > 0.5, "a read of 64 MB at " + gbs + " GB/s");
        Bench.Peaks peaks;
        try (var m = Engines.newManager(Engines.Kind.TENSORFLOW)) {
            peaks = Bench.peaks(m, 256, 2);
        }
        // a limit per dtype: the engine's float32, oneDNN's bfloat16 where it runs, the int8 kernel where vectorized
        assertTrue(peaks.float32() > 0, peaks.toString());
        assertEquals(io.blip2stream.model.nn.OneDnnWeight.available(), peaks.bfloat16() > 0, peaks.toString());
        assertEquals(io.blip2stream.model.nn.LowPrecisionWeight.int8Packed() || io.blip2stream.model.nn.WeightStreaming.vectorized(),
                peaks.int8() > 0, peaks.toString());
        Bench.Result f32 = Bench.run(SyntheticCheckpoint.Size.TINY, checkpoint, Engines.Kind.TENSORFLOW, "float32", 1, 3, peaks, bandwidth);
        Bench.Result int8 = Bench.run(SyntheticCheckpoint.Size.TINY, checkpoint, Engines.Kind.TENSORFLOW, "int8", 1, 3, peaks, bandwidth);
        assertEquals(peaks.bfloat16(), int8.bf16MatmulGflops(), 0.01 * peaks.bfloat16() + 1e-9);
        assertEquals("float32", f32.dtype());
        assertEquals("int8", int8.dtype());
        assertTrue(int8.peakRssMb() > 0);
        assertEquals(java.util.List.of(1, 8, 32), java.util.List.copyOf(int8.decodeStepMs().keySet()));
        // the bound is the weights' bytes over the bandwidth: int8 reads 1 byte a weight packed (a scale per output),
        // 1 + 4/64 streamed (a scale per 64), bfloat16 2, float32 4
        assertTrue(f32.decodeBoundMs() > 0 && f32.decodeB1OfBound() > 0);
        assertEquals(4.0, Bench.bytesPerWeight(io.blip2stream.model.weights.Precision.FLOAT32));
        assertEquals(2.0, Bench.bytesPerWeight(io.blip2stream.model.weights.Precision.BFLOAT16));
        assertEquals(io.blip2stream.model.nn.LowPrecisionWeight.int8Packed() ? 1.0 : 1.0625,
                Bench.bytesPerWeight(io.blip2stream.model.weights.Precision.INT8));
    }
}
