package io.blip2stream.engine;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * What both schedulers share: a queue any thread submits to, and the one thread that takes jobs from it and runs
 * them until closing leaves nothing queued or running. The thread's last word is {@link Listener#onStopped}.
 */
abstract class SchedulerThread implements Scheduler {
    private static final Logger LOG = LoggerFactory.getLogger(SchedulerThread.class);

    protected final Listener listener;
    private final LinkedBlockingQueue<InferenceJob> arrivals = new LinkedBlockingQueue<>();
    private final Thread thread;
    private volatile boolean closing;

    SchedulerThread(String threadName, Listener listener) {
        this.listener = listener;
        this.thread = new Thread(this::run, threadName);
        this.thread.setDaemon(true);
    }

    @Override
    public Scheduler start() {
        thread.start();
        return this;
    }

    @Override
    public void submit(InferenceJob job) {
        if (closing) {
            throw new IllegalStateException("the batcher is closing");
        }
        arrivals.add(job);
    }

    @Override
    public int queued() {
        return arrivals.size();
    }

    @Override
    public void close(long timeoutMs) throws InterruptedException {
        closing = true;
        thread.join(timeoutMs);
    }

    @Override
    public void close() {
        closing = true;
    }

    protected boolean closing() {
        return closing;
    }

    /** The queue, for the scheduler's own thread to take from. */
    protected LinkedBlockingQueue<InferenceJob> arrivals() {
        return arrivals;
    }

    /**
     * The next arrival on an idle device, waiting up to 100 ms; null when none came, and then {@link #finished} may
     * say the thread is done.
     */
    protected InferenceJob awaitFirst() throws InterruptedException {
        return arrivals.poll(100, TimeUnit.MILLISECONDS);
    }

    /** Whether the thread may end: closing, with nothing queued (and the scheduler running nothing). */
    protected boolean finished() {
        return closing && arrivals.isEmpty();
    }

    /** One turn of the scheduler's loop; false ends the thread. */
    protected abstract boolean turn() throws InterruptedException;

    /** What is still in hand when the thread ends (the rows of a running batch). */
    protected void release() {}

    private void run() {
        try {
            while (turn()) {
                // each turn admits, steps or runs a batch
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            LOG.warn("{} interrupted; {} queued get no result", thread.getName(), arrivals.size());
        } catch (RuntimeException | Error e) {
            LOG.error("{} failed", thread.getName(), e);
        } finally {
            release();
            listener.onStopped();
        }
    }
}
