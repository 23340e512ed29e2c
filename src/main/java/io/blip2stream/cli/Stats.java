package io.blip2stream.cli;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.util.Locale;

/** {@code --stats}: load time, peak heap and peak resident memory, on stderr. */
final class Stats {
    private Stats() {}

    static void print(long loadNanos, io.blip2stream.model.Blip2Model model) {
        long peakHeap = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP && p.getPeakUsage() != null) {
                peakHeap += p.getPeakUsage().getUsed();
            }
        }
        System.err.printf(Locale.ROOT, "stats: load %.0f ms, peak heap %.0f MB (max %.0f MB), peak RSS %s, dtype %s%n",
                loadNanos / 1e6, peakHeap / 1e6, Runtime.getRuntime().maxMemory() / 1e6, peakRss(), model.precision());
    }

    private static String peakRss() {
        double mb = io.blip2stream.bench.Bench.peakRssMb();
        return mb > 0 ? String.format(Locale.ROOT, "%.0f MB", mb) : "n/a";
    }
}
