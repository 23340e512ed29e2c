package io.blip2stream.cli;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
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
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    long kb = Long.parseLong(line.replaceAll("[^0-9]", ""));
                    return String.format(Locale.ROOT, "%.0f MB", kb / 1e3);
                }
            }
        } catch (Exception e) {
            // not Linux
        }
        return "n/a";
    }
}
