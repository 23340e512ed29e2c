package io.blip2stream.engine;

import ai.djl.ndarray.NDManager;
import io.blip2stream.common.Millis;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.GenerationRequest;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.FinishReason;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.GenerationResult;
import io.blip2stream.model.generation.RowFailure;
import io.blip2stream.model.generation.RowListener;
import io.blip2stream.model.image.ImageDecodeException;
import io.blip2stream.model.image.ImageDecoder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs batches of jobs on one device's models: a generation checkpoint (caption, vqa) and a retrieval checkpoint
 * (match, embed), either of which may be absent. Images of a batch are encoded together, generation runs in
 * groups of equal parameters (rows of different prompt lengths together), and every job ends as a result or an
 * error of its own: one bad request never fails the others. Not thread-safe: one runner per worker thread.
 */
public final class InferenceRunner implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(InferenceRunner.class);

    /**
     * Limits the runner enforces on each job.
     *
     * @param stepDelayMs a pause after each generated token, to play a slow model (tests, demos); 0 normally
     */
    public record Limits(int maxPromptTokens, long maxImagePixels, long stepDelayMs) {}

    /** A job's end: exactly one of result and error is set. */
    public record Outcome(InferenceJob job, InferenceResult result, RequestError error) {}

    private final NDManager manager;
    private final Blip2Model generation; // null: caption and vqa unsupported
    private final Blip2Model retrieval;  // null: match and embed unsupported
    private final Limits limits;
    private final ImageDecoder decoder;
    private final VisualPromptCache cache;
    private final String generationId;

    private InferenceRunner(NDManager manager, Blip2Model generation, Blip2Model retrieval, Limits limits, VisualPromptCache cache) {
        this.manager = manager;
        this.generation = generation;
        this.retrieval = retrieval;
        this.limits = limits;
        this.decoder = new ImageDecoder(limits.maxImagePixels());
        this.cache = cache;
        this.generationId = generation == null ? null : generation.id();
    }

    /**
     * Loads the models on one device.
     *
     * @param generationPath a generation checkpoint, or a retrieval one (then it serves match and embed), or null
     * @param retrievalPath  a retrieval checkpoint, or null
     */
    public static InferenceRunner load(Path generationPath, Path retrievalPath, Engines.Kind engine, String device,
                                       Limits limits) throws IOException {
        return load(generationPath, retrievalPath, engine, device, limits, VisualPromptCache.NONE);
    }

    /** @param cache where visual prompts are remembered across requests (and nodes) */
    public static InferenceRunner load(Path generationPath, Path retrievalPath, Engines.Kind engine, String device,
                                       Limits limits, VisualPromptCache cache) throws IOException {
        return load(generationPath, retrievalPath, engine, "float32", device, limits, cache);
    }

    /** @param dtype the precision the models' weights are kept in: float32, bfloat16, int8 or auto (model.dtype) */
    public static InferenceRunner load(Path generationPath, Path retrievalPath, Engines.Kind engine, String dtype, String device,
                                       Limits limits, VisualPromptCache cache) throws IOException {
        NDManager m = Engines.newManager(engine, device);
        Blip2Model gen = null;
        Blip2Model ret = null;
        try {
            if (generationPath != null) {
                Blip2Model first = Blip2Model.load(generationPath, m, dtype);
                if (first.canGenerate()) {
                    gen = first;
                } else {
                    ret = first;
                }
            }
            if (retrievalPath != null && ret == null) {
                ret = Blip2Model.load(retrievalPath, m, dtype);
                if (!ret.canMatch()) {
                    throw new IllegalArgumentException(retrievalPath + " is not a retrieval checkpoint (Blip2ForImageTextRetrieval)");
                }
            }
            if (gen == null && ret == null) {
                throw new IllegalArgumentException("no model to serve");
            }
            return new InferenceRunner(m, gen, ret, limits, cache);
        } catch (IOException | RuntimeException e) {
            if (gen != null) {
                gen.close();
            }
            if (ret != null) {
                ret.close();
            }
            m.close();
            throw e;
        }
    }

    public Blip2Model generationModel() {
        return generation;
    }

    public Blip2Model retrievalModel() {
        return retrieval;
    }

    /** Whether a model here serves the task. */
    public boolean supports(Task task) {
        return task.generates() ? generation != null : retrieval != null;
    }

    /** The model a task runs on, named as results name it (its folder). */
    public String modelName(Task task) {
        Blip2Model m = task.generates() ? generation : retrieval;
        return m == null ? null : m.name();
    }

    /**
     * A generation job ready to decode: its soft visual prompt [Q, W] and what getting it took.
     *
     * @param cached the visual prompt came from the cache (no vision encoder, no Q-Former)
     */
    public record Prepared(InferenceJob job, float[] visualPrompt, double preprocessMs, double visionMs, double qformerMs,
                           boolean cached) {}

    /**
     * Runs a batch; outcomes in the order of {@code jobs}. Every generated token goes to {@code sink}. A job past
     * its deadline is not started ({@link #timedOut}); one whose deadline passes while it generates stops at its
     * next token with finish_reason timeout.
     */
    public List<Outcome> run(List<InferenceJob> jobs, TokenSink sink) {
        long batchStart = System.nanoTime();
        Map<InferenceJob, Integer> index = new IdentityHashMap<>();
        Outcome[] out = new Outcome[jobs.size()];
        List<InferenceJob> generate = new ArrayList<>();
        List<InferenceJob> retrieve = new ArrayList<>();
        Stops stops = new Stops();
        TokenSink stopping = stops.stopping(sink);
        for (int i = 0; i < jobs.size(); i++) {
            InferenceJob job = jobs.get(i);
            index.put(job, i);
            if (job.pastDeadline(batchStart)) {
                out[i] = timedOut(job, batchStart);
            } else if (job.task().generates()) {
                generate.add(job);
            } else {
                retrieve.add(job);
            }
        }
        if (!generate.isEmpty()) {
            List<Outcome> failures = new ArrayList<>();
            List<Prepared> ready = prepareGeneration(generate, failures);
            for (Outcome f : failures) {
                out[index.get(f.job())] = f;
            }
            for (Outcome o : runGeneration(ready, batchStart, stopping)) {
                out[index.get(o.job())] = stops.finish(o);
            }
        }
        for (InferenceJob job : retrieve) {
            out[index.get(job)] = RetrievalJobs.run(this, retrieval, decoder, job, batchStart);
        }
        return List.of(out);
    }

    /**
     * Gets generation jobs ready to decode: checks each (model, prompt length), decodes and preprocesses the
     * images whose visual prompt is not in the cache, and runs those through the vision encoder and the Q-Former
     * in one batch. A job that cannot go on gets its outcome in {@code failures}; the others come back in order.
     */
    public List<Prepared> prepareGeneration(List<InferenceJob> jobs, List<Outcome> failures) {
        int n = jobs.size();
        float[][] pixels = new float[n][];
        float[][] prompts = new float[n][];
        String[] keys = new String[n];
        double[] preprocessMs = new double[n];
        boolean[] failed = new boolean[n];
        boolean[] cached = new boolean[n];
        List<Integer> misses = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            InferenceJob job = jobs.get(i);
            try {
                if (generation == null) {
                    throw new RequestError(RequestError.UNSUPPORTED_TASK, "no generation model is loaded for task " + job.task().wireName());
                }
                if (job.image() == null) {
                    throw new RequestError(RequestError.MISSING_IMAGE, "task " + job.task().wireName() + " needs an image");
                }
                checkPrompt(job);
                long t0 = System.nanoTime();
                keys[i] = job.imageDigest() + "|" + generationId; // hashed when the job was built, not here
                prompts[i] = cache.get(keys[i]);
                cached[i] = prompts[i] != null;
                if (!cached[i]) {
                    pixels[i] = generation.processor().preprocess(decoder.decode(job.image()));
                    misses.add(i);
                }
                preprocessMs[i] = Millis.ofNanos(System.nanoTime() - t0);
            } catch (ImageDecodeException e) {
                failed[i] = true;
                failures.add(failed(job, new RequestError(RequestError.INVALID_IMAGE, e.getMessage(), e)));
            } catch (RequestError e) {
                failed[i] = true;
                failures.add(failed(job, e));
            } catch (RuntimeException e) {
                failed[i] = true;
                failures.add(failed(job, internal(job, e)));
            }
        }
        double visionMs = 0;
        double qformerMs = 0;
        if (!misses.isEmpty()) {
            try {
                List<float[]> px = new ArrayList<>(misses.size());
                for (int i : misses) {
                    px.add(pixels[i]);
                }
                Blip2Model.ImageFeatures features = generation.encodeImages(px, false);
                for (int k = 0; k < misses.size(); k++) {
                    int i = misses.get(k);
                    prompts[i] = generation.visualPrompt(features, k);
                    cache.put(keys[i], prompts[i]);
                }
                visionMs = Millis.ofNanos(features.visionNanos());
                qformerMs = Millis.ofNanos(features.qformerNanos());
            } catch (RuntimeException e) {
                for (int i : misses) {
                    failed[i] = true;
                    failures.add(failed(jobs.get(i), internal(jobs.get(i), e)));
                }
            }
        }
        List<Prepared> ready = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            if (!failed[i]) {
                ready.add(new Prepared(jobs.get(i), prompts[i], preprocessMs[i], cached[i] ? 0 : visionMs,
                        cached[i] ? 0 : qformerMs, cached[i]));
            }
        }
        return ready;
    }

    /**
     * The prompt's length against the limits, from the ids it carries ({@link RequestTexts} checked them when the
     * request came in; this keeps a job made for another model from failing the rows it would join).
     */
    private void checkPrompt(InferenceJob job) {
        RequestError tooLong = RequestTexts.tooLong(generation.config(), "prompt", job.generation().promptIds().length,
                job.generation().params().maxNewTokens(),
                limits.maxPromptTokens());
        if (tooLong != null) {
            throw tooLong;
        }
    }

    /** What a generation job's language model reads after its visual prompt: its prompt's ids, tokenized already. */
    public GenerationRequest generationRequest(Prepared p) {
        return new GenerationRequest(p.visualPrompt(), null, p.job().generation().promptIds());
    }

    /** The limits this runner enforces. */
    public Limits limits() {
        return limits;
    }

    /**
     * The result of a generation job.
     *
     * @param admittedNanos when the job left the queue for the model
     */
    public InferenceResult generationResult(Prepared p, GenerationResult r, long admittedNanos) {
        InferenceJob job = p.job();
        long end = System.nanoTime();
        return new InferenceResult(job, modelName(job.task()), new InferenceResult.Generated(r.text(), r.tokenIds(), r.finishReason()),
                new InferenceResult.Timings(Millis.ofNanos(admittedNanos - job.acceptedNanos()), p.preprocessMs(), p.visionMs(), p.qformerMs(),
                        Millis.ofNanos(r.prefillNanos()), Millis.ofNanos(r.decodeNanos()), Millis.ofNanos(end - job.acceptedNanos()), p.cached()));
    }

    /**
     * The outcome of a job whose deadline passed before any work on it started: for caption and vqa a result
     * with no tokens and finish_reason timeout, for match and embed the error {@code timeout}.
     */
    public Outcome timedOut(InferenceJob job, long nowNanos) {
        double waited = Millis.ofNanos(nowNanos - job.acceptedNanos());
        if (!job.task().generates()) {
            return failed(job, new RequestError(RequestError.TIMEOUT, "the request's deadline passed after " + waited
                    + " ms, before its work started"));
        }
        return new Outcome(job, new InferenceResult(job, modelName(job.task()),
                new InferenceResult.Generated("", new int[0], FinishReason.TIMEOUT), new InferenceResult.Timings(waited, 0, 0, 0, 0, 0, waited, false)), null);
    }

    /** A job that failed inside the model: logged, and reported as an internal error. */
    public static Outcome internalFailure(InferenceJob job, RuntimeException e) {
        return failed(job, internal(job, e));
    }

    /**
     * Static batching: rows with equal generation parameters decode together. A row that fails ends alone (the
     * others finish with the tokens they would have had alone); a beam-search group that fails runs again one
     * request at a time, so only the request that fails alone gets the error.
     */
    private List<Outcome> runGeneration(List<Prepared> ready, long batchStart, TokenSink sink) {
        List<Outcome> out = new ArrayList<>(ready.size());
        Map<GenerationParams, List<Prepared>> groups = new LinkedHashMap<>();
        for (Prepared p : ready) {
            groups.computeIfAbsent(p.job().generation().params(), k -> new ArrayList<>()).add(p);
        }
        for (Map.Entry<GenerationParams, List<Prepared>> g : groups.entrySet()) {
            if (g.getKey().numBeams() > 1) {
                out.addAll(runBeams(g.getValue(), g.getKey(), batchStart, sink));
            } else {
                out.addAll(runRows(g.getValue(), g.getKey(), batchStart, sink));
            }
        }
        return out;
    }

    /** Greedy or sampled rows, each ending with its own outcome. */
    private List<Outcome> runRows(List<Prepared> members, GenerationParams params, long batchStart, TokenSink sink) {
        Outcome[] outcomes = new Outcome[members.size()];
        List<GenerationRequest> requests = new ArrayList<>(members.size());
        List<JobRow> rows = new ArrayList<>(members.size());
        for (int k = 0; k < members.size(); k++) {
            int row = k;
            requests.add(generationRequest(members.get(k)));
            rows.add(new JobRow(this, members.get(k), sink, batchStart, true, o -> outcomes[row] = o));
        }
        try (ContinuousBatch batch = generation.generation().newBatch()) {
            generation.generation().admit(batch, requests, java.util.Collections.nCopies(members.size(), params), List.copyOf(rows));
            while (!batch.isEmpty()) {
                batch.step();
            }
        } catch (RuntimeException e) {
            rows.forEach(r -> r.onError(e)); // the model failed for the rows still running
        }
        return List.of(outcomes);
    }

    /** Beam search of a group of requests with equal parameters; if the group fails, each request alone. */
    private List<Outcome> runBeams(List<Prepared> members, GenerationParams params, long batchStart, TokenSink sink) {
        List<GenerationRequest> requests = new ArrayList<>(members.size());
        Outcome[] outcomes = new Outcome[members.size()];
        List<RowListener> rows = new ArrayList<>(members.size());
        for (int k = 0; k < members.size(); k++) {
            int row = k;
            requests.add(generationRequest(members.get(k)));
            rows.add(new JobRow(this, members.get(k), sink, batchStart, true, o -> outcomes[row] = o));
        }
        try {
            generation.generation().generate(requests, params, rows);
            return List.of(outcomes);
        } catch (RuntimeException e) {
            if (members.size() == 1) {
                return List.of(internalFailure(members.get(0).job(), e));
            }
            LOG.warn("beam search of {} requests together failed ({}): each runs again alone", members.size(), e.toString());
            List<Outcome> out = new ArrayList<>(members.size());
            for (Prepared p : members) {
                out.addAll(runBeams(List.of(p), params, batchStart, sink));
            }
            return out;
        }
    }

    /** The pause {@code step_delay_ms} asks for after a decode step (to play a slow model in tests and demos). */
    public void pauseAfterStep() {
        if (limits.stepDelayMs() > 0) {
            try {
                Thread.sleep(limits.stepDelayMs());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    static Outcome failed(InferenceJob job, RequestError e) {
        return new Outcome(job, null, e);
    }

    /**
     * A failure inside the model, as the request's client learns it: a row's own failure says what happened to the
     * request; anything else says only that it failed and where the details are (the log, under an incident id),
     * never naming weights or classes.
     */
    static RequestError internal(InferenceJob job, RuntimeException e) {
        if (e instanceof RowFailure) {
            LOG.warn("request {} failed alone: {}", job.id(), e.getMessage());
            return new RequestError(RequestError.INTERNAL, "generation failed: " + e.getMessage(), e);
        }
        String incident = Long.toHexString(java.util.concurrent.ThreadLocalRandom.current().nextLong() >>> 16);
        LOG.error("request {} failed (incident {})", job.id(), incident, e);
        return new RequestError(RequestError.INTERNAL, "inference failed; incident " + incident + " in the log of the node that ran it", e);
    }


    @Override
    public void close() {
        if (generation != null) {
            generation.close();
        }
        if (retrieval != null) {
            retrieval.close();
        }
        manager.close();
    }
}
