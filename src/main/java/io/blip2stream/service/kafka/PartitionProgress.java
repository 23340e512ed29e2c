package io.blip2stream.service.kafka;

import java.util.Collection;
import java.util.SortedSet;
import java.util.TreeSet;

/**
 * What a partition's committed offset says, with exactly-once output: the lowest offset not answered, and in the
 * offset's metadata which records above it are answered already. Answers complete out of order (a short request
 * overtakes a long one), so the offset alone would have the next owner answer those again.
 *
 * <p>Metadata: {@code eos1;TOP;A,B,...}: every offset from the committed one up to {@code TOP} is answered, except
 * {@code A, B, ...}; empty when nothing above the offset is answered.
 *
 * @param next         the first offset not answered (what the consumer reads from)
 * @param answeredUpTo offsets up to here are answered, except {@code unanswered} (-1: none above {@code next})
 * @param unanswered   offsets at or above {@code next} still to answer
 */
public record PartitionProgress(long next, long answeredUpTo, SortedSet<Long> unanswered) {
    static final String PREFIX = "eos1;";

    /**
     * @param taken      the highest offset this owner took (-1: none)
     * @param open       offsets taken and not answered, and offsets left unanswered by the last owner not read yet
     * @param answeredUpTo what the last owner answered up to (-1: nothing)
     */
    public static PartitionProgress of(long taken, Collection<Long> open, long answeredUpTo) {
        TreeSet<Long> o = new TreeSet<>(open);
        long top = Math.max(taken, answeredUpTo);
        long next = o.isEmpty() ? top + 1 : o.first();
        return next < top ? new PartitionProgress(next, top, o) : new PartitionProgress(next, -1, new TreeSet<>());
    }

    /** The metadata to commit with {@link #next}. */
    public String metadata() {
        if (answeredUpTo < 0) {
            return "";
        }
        StringBuilder b = new StringBuilder(PREFIX).append(answeredUpTo).append(';');
        for (long x : unanswered) {
            b.append(x).append(',');
        }
        return b.toString();
    }

    /** Reads a committed offset and its metadata (any other metadata: nothing above the offset is answered). */
    public static PartitionProgress parse(long next, String metadata) {
        TreeSet<Long> unanswered = new TreeSet<>();
        long upTo = -1;
        if (metadata != null && metadata.startsWith(PREFIX)) {
            String[] parts = metadata.substring(PREFIX.length()).split(";", -1);
            upTo = Long.parseLong(parts[0]);
            if (parts.length > 1) {
                for (String x : parts[1].split(",")) {
                    if (!x.isBlank()) {
                        unanswered.add(Long.parseLong(x.strip()));
                    }
                }
            }
        }
        return new PartitionProgress(next, upTo, unanswered);
    }

    /** Whether the record at {@code offset} was answered (its answer committed) by whoever committed this. */
    public boolean answered(long offset) {
        return offset < next || (offset <= answeredUpTo && !unanswered.contains(offset));
    }
}
