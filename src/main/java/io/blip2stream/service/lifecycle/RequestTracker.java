package io.blip2stream.service.lifecycle;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.service.bus.RequestEvent;
import io.blip2stream.service.bus.TokenEvent;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What this node knows of each request: its status, the tokens generated so far, and its result or error; and
 * who follows it. Following replays what is known (the tokens so far, or the result) and then passes on what
 * comes. Finished requests are kept for {@code retentionMs}, at most {@code maxEntries} of them.
 *
 * <p>Not thread-safe: it lives on one event loop (the HTTP verticle's), where all its events arrive.
 */
public final class RequestTracker {

    /** Someone following a request. Calls come on the tracker's event loop. */
    public interface Listener {
        void token(TokenEvent token);

        void done(ObjectNode result);

        void failed(String code, String message);
    }

    /** One request as far as it is known. */
    public static final class Entry {
        final String id;
        RequestEvent.Status status = RequestEvent.Status.QUEUED;
        String task;
        String source;
        String owner;
        final List<TokenEvent> tokens = new ArrayList<>();
        ObjectNode result;
        String errorCode;
        String errorMessage;
        final List<Listener> listeners = new ArrayList<>();
        long finishedAt;

        Entry(String id) {
            this.id = id;
        }

        public RequestEvent.Status status() {
            return status;
        }

        public ObjectNode result() {
            return result;
        }

        public String errorCode() {
            return errorCode;
        }

        public String errorMessage() {
            return errorMessage;
        }

        public String task() {
            return task;
        }

        public String source() {
            return source;
        }

        /** Who submitted it over HTTP or WebSocket (a token's fingerprint), or null. */
        public String owner() {
            return owner;
        }

        public int tokenCount() {
            return tokens.size();
        }
    }

    private final long retentionMs;
    private final int maxEntries;
    private final Map<String, Entry> entries = new LinkedHashMap<>();

    public RequestTracker(long retentionMs, int maxEntries) {
        this.retentionMs = retentionMs;
        this.maxEntries = maxEntries;
    }

    public Entry get(String id) {
        return entries.get(id);
    }

    /** Records who submitted a request (null: nobody in particular), before any event of it may arrive. */
    public void own(String id, String owner) {
        if (owner != null) {
            entries.computeIfAbsent(id, Entry::new).owner = owner;
        }
    }

    /** Who submitted a request over HTTP or WebSocket, or null (a Kafka request, an open service, or unknown). */
    public String owner(String id) {
        Entry e = entries.get(id);
        return e == null ? null : e.owner;
    }

    public void onEvent(RequestEvent e) {
        Entry en = entries.computeIfAbsent(e.id(), Entry::new);
        if (en.status.finished() && !e.status().finished()) {
            return; // a late status of a finished request
        }
        if (e.task() != null) {
            en.task = e.task();
        }
        if (e.source() != null) {
            en.source = e.source();
        }
        if (e.owner() != null) {
            en.owner = e.owner();
        }
        switch (e.status()) {
            case QUEUED, RUNNING -> en.status = e.status();
            case DONE -> done(en, e.result()); // its tokens came before it, on the same route
            case FAILED -> {
                en.status = RequestEvent.Status.FAILED;
                en.errorCode = e.errorCode();
                en.errorMessage = e.errorMessage();
                finish(en);
                for (Listener l : new ArrayList<>(en.listeners)) {
                    l.failed(e.errorCode(), e.errorMessage());
                }
                en.listeners.clear();
            }
        }
    }

    public void onToken(TokenEvent t) {
        Entry en = entries.computeIfAbsent(t.id(), Entry::new);
        if (en.status.finished()) {
            return;
        }
        en.status = RequestEvent.Status.RUNNING;
        if (t.index() != en.tokens.size()) {
            return; // a token of an earlier attempt (a request redelivered by Kafka starts again at 0)
        }
        en.tokens.add(t);
        for (Listener l : new ArrayList<>(en.listeners)) {
            l.token(t);
        }
    }

    /**
     * Follows a request: replays its tokens so far, or its result, then passes on what comes.
     *
     * @return false if the request is finished (it was replayed whole and nothing more will come)
     */
    public boolean follow(String id, Listener l) {
        Entry en = entries.computeIfAbsent(id, Entry::new);
        switch (en.status) {
            case DONE -> {
                l.done(en.result);
                return false;
            }
            case FAILED -> {
                l.failed(en.errorCode, en.errorMessage);
                return false;
            }
            default -> {
                for (TokenEvent t : en.tokens) {
                    l.token(t);
                }
                en.listeners.add(l);
                return true;
            }
        }
    }

    public void unfollow(String id, Listener l) {
        Entry en = entries.get(id);
        if (en != null) {
            en.listeners.remove(l);
            if (en.listeners.isEmpty() && en.source == null && en.tokens.isEmpty() && !en.status.finished()) {
                entries.remove(id); // only ever followed, never seen
            }
        }
    }

    /** Whether anything but a follower has told of this request. */
    public boolean known(String id) {
        Entry en = entries.get(id);
        return en != null && (en.source != null || !en.tokens.isEmpty() || en.status != RequestEvent.Status.QUEUED);
    }

    /** Forgets finished requests older than the retention, and the oldest ones above the cap. */
    public void expire(long now) {
        int finished = 0;
        for (Entry e : entries.values()) {
            if (e.status.finished()) {
                finished++;
            }
        }
        for (Iterator<Entry> it = entries.values().iterator(); it.hasNext(); ) {
            Entry e = it.next();
            if (!e.status.finished()) {
                continue;
            }
            if (now - e.finishedAt > retentionMs || finished > maxEntries) {
                it.remove();
                finished--;
            }
        }
    }

    private void done(Entry en, ObjectNode result) {
        en.status = RequestEvent.Status.DONE;
        en.result = result;
        finish(en);
        for (Listener l : new ArrayList<>(en.listeners)) {
            l.done(result);
        }
        en.listeners.clear();
    }

    private void finish(Entry en) {
        en.finishedAt = System.currentTimeMillis();
        // keep insertion order by finish time, so expiry walks oldest first
        entries.remove(en.id);
        entries.put(en.id, en);
    }

    public int size() {
        return entries.size();
    }
}
