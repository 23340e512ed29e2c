package io.blip2stream.service.kafka;

import io.blip2stream.cluster.RecordsInFlight;
import io.blip2stream.cluster.RequestStore;
import io.vertx.core.Context;
import io.vertx.core.Future;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The ingress's guard against poison records: a record that was in a node's hands when that node died is suspected
 * of killing it. Each record taken is counted in this node's {@link CrashJournal} and in the cluster's
 * {@link RecordsInFlight} markers. A record whose count reached {@code kafka.poison_after_crashes} is quarantined (dead
 * letter, never run). A suspect runs alone once nothing else is in hand, so that if it kills the node again it alone
 * is blamed; records taken meanwhile wait behind it, and a death while they wait is not counted against them.
 *
 * <p>Used on the ingress's event loop only.
 */
final class RedeliveryGuard {
    private static final Logger LOG = LoggerFactory.getLogger(RedeliveryGuard.class);

    /** What to do with a record taken. */
    enum Verdict { RUN, QUARANTINE, WAIT }

    /** A record waiting to start: how to run it, and how to hand it back unrun (the node stops). */
    private record Waiting(Runnable run, Runnable handBack) {}

    private final CrashJournal journal;
    private final RecordsInFlight recordsInFlight; // null: this node's journal only
    private final int poisonAfterCrashes;
    private final Context context;
    /** Suspects waiting to run alone, and whether one runs now. */
    private final ArrayDeque<Waiting> alone = new ArrayDeque<>();
    private boolean runningAlone;
    /** Records taken while suspects wait or run: they start once the suspects are done. */
    private final ArrayDeque<Waiting> held = new ArrayDeque<>();

    RedeliveryGuard(CrashJournal journal, RecordsInFlight recordsInFlight, int poisonAfterCrashes, Context context) {
        this.journal = journal;
        this.recordsInFlight = recordsInFlight;
        this.poisonAfterCrashes = poisonAfterCrashes;
        this.context = context;
    }

    /** The record at {@code where} is in this node's hands now (before anything runs on it). */
    void taken(String where) {
        journal.taken(where);
    }

    /**
     * How often a node died with the record at {@code where} in hand: this node's own journal, or the cluster's
     * markers (a record whose partition moved here after its node died); the larger.
     */
    Future<Integer> crashes(String where) {
        int local = journal.crashes(where);
        if (recordsInFlight == null) {
            return Future.succeededFuture(local);
        }
        return recordsInFlight.take(where, context).timeout(RequestStore.TIMEOUT_MS, TimeUnit.MILLISECONDS)
                .map(cluster -> Math.max(local, cluster))
                .recover(e -> {
                    LOG.warn("the cluster did not say whether {} was in a dead node's hands ({}): going by this node's", where, e.toString());
                    return Future.succeededFuture(local);
                });
    }

    /**
     * What becomes of a record that has {@code crashes} deaths against it: quarantined, run now, or queued
     * ({@link Verdict#WAIT}) to start by {@code run} when its turn comes (alone, if it is a suspect), or to be handed
     * back unrun by {@code handBack} if the node stops first. {@code run} is told whether the record runs alone.
     */
    Verdict admit(String where, int crashes, java.util.function.Consumer<Boolean> run, Runnable handBack) {
        if (crashes >= poisonAfterCrashes) {
            return Verdict.QUARANTINE;
        }
        if (crashes > 0) {
            LOG.warn("record {}: the node holding it died {} time(s); it runs alone", where, crashes);
            waiting(where, crashes);
            alone.add(new Waiting(() -> {
                journal.alone(where);
                arm(where, crashes);
                run.accept(true);
            }, handBack));
            return Verdict.WAIT;
        }
        if (runningAlone || !alone.isEmpty()) {
            waiting(where, 0);
            held.add(new Waiting(() -> {
                journal.started(where);
                arm(where, 0);
                run.accept(false);
            }, handBack)); // after the suspects
            return Verdict.WAIT;
        }
        return Verdict.RUN;
    }

    /** The record at {@code where} is out of this node's hands (answered, or to be read again). */
    void done(String where, boolean ranAlone) {
        if (ranAlone) {
            runningAlone = false;
        }
        journal.done(where);
        if (recordsInFlight != null) {
            recordsInFlight.done(where, context);
        }
    }

    /** Whether every partition must stay paused: a suspect waits or runs alone. */
    boolean pausesAll() {
        return runningAlone || !alone.isEmpty();
    }

    /**
     * Runs the next suspect alone once nothing else is in hand ({@code inFlight}: the records in this node's hands,
     * the waiting ones included), or, with no suspect left, every record that waited behind them.
     */
    void runIfClear(int inFlight) {
        if (runningAlone) {
            return;
        }
        if (!alone.isEmpty()) {
            if (inFlight == alone.size() + held.size()) { // nothing else running (and no crash count still being looked up)
                runningAlone = true;
                alone.poll().run().run();
            }
            return;
        }
        while (!held.isEmpty()) {
            held.poll().run().run(); // the suspects are done: what waited behind them runs as usual
        }
    }

    /** The node stops: every waiting record is handed back unrun, to be read again by its partition's next owner. */
    void handBackAll() {
        List<Waiting> unrun = new ArrayList<>(alone);
        unrun.addAll(held);
        alone.clear();
        held.clear();
        unrun.forEach(w -> w.handBack().run());
    }

    /** A record in hand waits to start: a death of this node meanwhile is not counted against it. */
    private void waiting(String where, int crashes) {
        journal.waiting(where);
        if (recordsInFlight != null) {
            recordsInFlight.armed(where, crashes, false, context);
        }
    }

    /** A waiting record starts: a death of this node from now on counts against it. */
    private void arm(String where, int crashes) {
        if (recordsInFlight != null) {
            recordsInFlight.armed(where, crashes, true, context);
        }
    }
}
