package io.blip2stream.engine;

import java.util.concurrent.TimeUnit;

/**
 * When the continuous batcher lets waiting requests in. Each admission runs the new requests' images through the
 * vision encoder and the Q-Former and their prompts through a prefill, in one batch, while every running row waits;
 * per request that costs far more alone than together (the bench's small model on a 2-core CPU: 420 ms for one
 * image, 300 ms each for eight, plus a fixed part). Requests that reach a worker tens of milliseconds apart, as they
 * do through Kafka, would each stall the batch on their own. So waiting requests are held for company, for a time
 * scaled to what an admission costs on this model and device (a few milliseconds' wait is all a fast model's
 * admission is worth; a slow one's is worth a tenth of a second), within the configured bounds:
 * <ul>
 *   <li>idle device: after the first arrival, others are taken as long as each comes within {@link #idleGapNanos}
 *       of the one before: {@code max_batch_wait_ms}, or a quarter of a request's admission cost if that is more,
 *       never above {@code max_join_wait_ms}. A lone request waits one gap;</li>
 *   <li>rows decoding: arrivals join once they fill the free rows, or once the oldest has waited
 *       {@link #joinWaitNanos}: a request's admission cost, at most {@code max_join_wait_ms}. The running rows go
 *       on decoding meanwhile, so the wait costs the device nothing; it adds at most that to the new requests'
 *       first tokens.</li>
 * </ul>
 * A request's admission cost is a moving average of admission time per admitted request, as measured.
 *
 * <p>Not thread-safe: the batcher's thread alone uses it.
 */
public final class AdmissionPolicy {
    /** weight of the newest admission in the moving average */
    private static final double ALPHA = 0.3;

    private final long maxWaitNanos;
    private final long maxJoinWaitNanos;
    private double rowCostNanos = -1; // none measured yet

    /**
     * @param maxWaitMs     on an idle device, how long a first arrival waits for others at least
     * @param maxJoinWaitMs the longest any arrival is held for company (0: never, beyond {@code maxWaitMs} idle)
     */
    public AdmissionPolicy(long maxWaitMs, long maxJoinWaitMs) {
        this.maxWaitNanos = TimeUnit.MILLISECONDS.toNanos(Math.max(0, maxWaitMs));
        this.maxJoinWaitNanos = TimeUnit.MILLISECONDS.toNanos(Math.max(0, maxJoinWaitMs));
    }

    /** An admission of {@code rows} requests took {@code nanos}. */
    public void admitted(int rows, long nanos) {
        if (rows <= 0) {
            return;
        }
        double perRow = (double) nanos / rows;
        rowCostNanos = rowCostNanos < 0 ? perRow : ALPHA * perRow + (1 - ALPHA) * rowCostNanos;
    }

    /** A request's admission cost so far (nanoseconds), or -1 before the first admission. */
    public long rowCostNanos() {
        return (long) rowCostNanos;
    }

    /** Idle device: how long to wait for the next arrival after the last one. */
    public long idleGapNanos() {
        long scaled = rowCostNanos < 0 ? 0 : (long) (rowCostNanos / 4);
        return Math.max(maxWaitNanos, Math.min(maxJoinWaitNanos, scaled));
    }

    /** Idle device: the longest the first arrival waits for others, however they trickle in. */
    public long idleCapNanos() {
        return Math.max(idleGapNanos(), joinWaitNanos());
    }

    /** Rows decoding: how long the oldest arrival may wait for others before it joins. */
    public long joinWaitNanos() {
        // before anything was measured, hold arrivals as long as allowed: the first admission is the slowest
        long scaled = rowCostNanos < 0 ? maxJoinWaitNanos : (long) rowCostNanos;
        return Math.min(maxJoinWaitNanos, scaled);
    }

    /**
     * Rows decoding: whether the waiting arrivals join now.
     *
     * @param waiting     arrivals waiting
     * @param free        rows free in the batch
     * @param waitedNanos how long the oldest of them has waited
     */
    public boolean joinNow(int waiting, int free, long waitedNanos) {
        return waiting > 0 && free > 0 && (waiting >= free || waitedNanos >= joinWaitNanos());
    }
}
