package io.blip2stream.service.kafka;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * This node's memory, across its own deaths, of the Kafka records it had in hand: an append-only journal on local
 * disk ({@code + source} when a record is taken, {@code ~ source} while it waits behind a suspect and {@code > source}
 * when it then starts, {@code ! source} when it runs alone, {@code - source} when it is
 * done) and the crash count of each record ({@code counts.json}). When the node starts, the records the journal
 * leaves open were in its hands when it died: each gets one crash more, or, if one was running alone, that one
 * alone. The cluster's {@code RecordsInFlight} does the same for a record whose partition moves to another node;
 * this covers a node alone, whose cluster state dies with it.
 *
 * <p>Appends are not forced to the disk: a process that dies leaves them in the page cache, and that is the death
 * this counts. Not thread-safe: the ingress's event loop calls it (an append is a few microseconds).
 */
public final class CrashJournal implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(CrashJournal.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The journal is rewritten with only its open records once it grows past this. */
    private static final long COMPACT_BYTES = 1 << 20;

    private final Path journalFile;
    private final Path countsFile;
    private final Map<String, Integer> counts = new LinkedHashMap<>();
    private final Set<String> open = new LinkedHashSet<>();
    /** Records in hand that wait to start (behind a suspect running alone): not blamed if the node dies. */
    private final Set<String> waiting = new LinkedHashSet<>();
    /** The record running alone, or null. */
    private String runningAlone;
    private FileChannel journal;
    private FileChannel lock; // held while this node runs (the lock goes with the process, however it ends)

    private CrashJournal(Path dir, String name) {
        this.journalFile = dir.resolve(name + ".journal");
        this.countsFile = dir.resolve(name + ".crashes.json");
    }

    /**
     * Opens the journal {@code name} (a node's: its consumer group, node id and cluster port, so that nodes sharing a
     * data folder on one machine keep their own) under {@code dir}, counting a crash for each record the last run left
     * open (see the class comment), then starts a new journal. A journal another live process holds is refused.
     */
    public static CrashJournal open(Path dir, String name) {
        CrashJournal j = new CrashJournal(dir, name.replaceAll("[^A-Za-z0-9._-]", "_"));
        try {
            Files.createDirectories(dir);
            j.lock = FileChannel.open(dir.resolve(j.journalFile.getFileName() + ".lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            java.nio.channels.FileLock held;
            try {
                held = j.lock.tryLock();
            } catch (java.nio.channels.OverlappingFileLockException e) {
                held = null; // this very process holds it (another ingress still open)
            }
            if (held == null) {
                j.lock.close();
                throw new IllegalStateException("another running node keeps its crash journal in " + j.journalFile
                        + ": give each node on this machine its own BLIP2_DATA_DIR (or node id and cluster port)");
            }
            j.load();
            j.journal = FileChannel.open(j.journalFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open the crash journal in " + dir + ": " + e.getMessage(), e);
        }
        return j;
    }

    private void load() throws IOException {
        if (Files.exists(countsFile)) {
            try {
                JSON.readTree(countsFile.toFile()).fields().forEachRemaining(e -> counts.put(e.getKey(), e.getValue().asInt()));
            } catch (IOException e) {
                LOG.warn("the crash counts in {} are unreadable ({}); starting from none", countsFile, e.toString());
            }
        }
        if (!Files.exists(journalFile)) {
            return;
        }
        Set<String> left = new LinkedHashSet<>();
        Set<String> idle = new LinkedHashSet<>();
        String solo = null;
        for (String line : Files.readAllLines(journalFile, StandardCharsets.UTF_8)) {
            if (line.length() < 3) {
                continue; // a line cut off by the death itself
            }
            String source = line.substring(2);
            switch (line.charAt(0)) {
                case '+' -> left.add(source);
                case '~' -> idle.add(source);
                case '>' -> idle.remove(source);
                case '!' -> {
                    solo = source;
                    idle.remove(source);
                }
                case '-' -> {
                    left.remove(source);
                    idle.remove(source);
                    if (source.equals(solo)) {
                        solo = null;
                    }
                }
                default -> { }
            }
        }
        // a record running alone when the node died is the one suspected; else every record in hand that had started
        // (not those waiting behind suspects: they never ran, and two such deaths would condemn them unrun)
        List<String> started = left.stream().filter(x -> !idle.contains(x)).toList();
        List<String> suspects = solo != null && left.contains(solo) ? List.of(solo) : started;
        for (String s : suspects) {
            counts.merge(s, 1, Integer::sum);
        }
        if (!suspects.isEmpty()) {
            LOG.warn("this node died with {} record(s) in hand{}: {}", left.size(), solo != null ? " (" + solo + " running alone)" : "",
                    suspects.size() > 10 ? suspects.subList(0, 10) + "..." : suspects);
            saveCounts();
        }
    }

    /** How often the record at {@code source} ({@code topic/partition/offset}) was in hand when this node died. */
    public int crashes(String source) {
        return counts.getOrDefault(source, 0);
    }

    /** A record is taken: in hand until {@link #done}. */
    public void taken(String source) {
        open.add(source);
        append('+', source);
    }

    /** A record in hand waits to start (behind a suspect): if the node dies now, it is not suspected. */
    public void waiting(String source) {
        if (open.contains(source) && waiting.add(source)) {
            append('~', source);
        }
    }

    /** A waiting record starts (with others): if the node dies now, it is suspected with them. */
    public void started(String source) {
        if (waiting.remove(source)) {
            append('>', source);
        }
    }

    /** A record runs alone: if the node dies now, it alone is suspected. */
    public void alone(String source) {
        waiting.remove(source);
        runningAlone = source;
        append('!', source);
    }

    /** A record is answered (or handed back): no longer in hand; its crash count is forgotten. */
    public void done(String source) {
        waiting.remove(source);
        if (source.equals(runningAlone)) {
            runningAlone = null;
        }
        if (open.remove(source)) {
            append('-', source);
        }
        if (counts.remove(source) != null) {
            saveCounts();
        }
    }

    private void append(char kind, String source) {
        if (journal == null) {
            return;
        }
        try {
            journal.write(ByteBuffer.wrap((kind + " " + source + "\n").getBytes(StandardCharsets.UTF_8)));
            if (journal.size() > COMPACT_BYTES) {
                compact();
            }
        } catch (IOException e) {
            LOG.warn("could not write the crash journal {}: {}", journalFile, e.toString());
        }
    }

    /** Rewrites the journal with only the records in hand. */
    private void compact() throws IOException {
        Path tmp = journalFile.resolveSibling(journalFile.getFileName() + ".tmp");
        StringBuilder b = new StringBuilder();
        open.forEach(s -> b.append("+ ").append(s).append('\n'));
        waiting.forEach(s -> b.append("~ ").append(s).append('\n'));
        if (runningAlone != null && open.contains(runningAlone)) {
            b.append("! ").append(runningAlone).append('\n');
        }
        Files.writeString(tmp, b, StandardCharsets.UTF_8);
        journal.close();
        Files.move(tmp, journalFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        journal = FileChannel.open(journalFile, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
    }

    private void saveCounts() {
        ObjectNode o = JSON.createObjectNode();
        counts.forEach(o::put);
        try {
            Path tmp = countsFile.resolveSibling(countsFile.getFileName() + ".tmp");
            Files.writeString(tmp, o.toString(), StandardCharsets.UTF_8);
            Files.move(tmp, countsFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            LOG.warn("could not write the crash counts {}: {}", countsFile, e.toString());
        }
    }

    /** Tests: what the death of the process does (its lock released, its journal left as it is). */
    Runnable dieForTest() {
        return () -> {
            try {
                journal.close();
                lock.close();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            journal = null;
        };
    }

    /**
     * A graceful stop: whatever is still in hand is handed back (it is read again), not a crash, so the journal is
     * emptied.
     */
    @Override
    public void close() {
        if (journal == null) {
            return;
        }
        try {
            journal.truncate(0);
            journal.close();
            lock.close();
        } catch (IOException e) {
            LOG.warn("could not close the crash journal {}: {}", journalFile, e.toString());
        }
        journal = null;
        open.clear();
    }
}
