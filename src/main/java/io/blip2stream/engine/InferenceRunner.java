package io.blip2stream.engine;

import ai.djl.ndarray.NDManager;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.image.ImageDecodeException;
import io.blip2stream.model.image.ImageDecoder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
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
        NDManager m = Engines.newManager(engine, device);
        Blip2Model gen = null;
        Blip2Model ret = null;
        try {
            if (generationPath != null) {
                Blip2Model first = Blip2Model.load(generationPath, m);
                if (first.canGenerate()) {
                    gen = first;
                } else {
                    ret = first;
                }
            }
            if (retrievalPath != null && ret == null) {
                ret = Blip2Model.load(retrievalPath, m);
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

    /** Runs a batch; outcomes in the order of {@code jobs}. Every generated token goes to {@code sink}. */
    public List<Outcome> run(List<InferenceJob> jobs, TokenSink sink) {
        long batchStart = System.nanoTime();
        Outcome[] out = new Outcome[jobs.size()];
        float[][] pixels = new float[jobs.size()][];
        float[][] cached = new float[jobs.size()][];
        String[] cacheKeys = new String[jobs.size()];
        double[] preprocessMs = new double[jobs.size()];
        List<Integer> generate = new ArrayList<>();
        List<Integer> retrieve = new ArrayList<>();
        for (int i = 0; i < jobs.size(); i++) {
            InferenceJob job = jobs.get(i);
            try {
                if (!supports(job.task())) {
                    throw new RequestError(RequestError.UNSUPPORTED_TASK, "no " + (job.task().generates()
                            ? "generation" : "retrieval") + " model is loaded for task " + job.task().wireName());
                }
                Blip2Model model = job.task().generates() ? generation : retrieval;
                if (job.image() != null) {
                    long t0 = System.nanoTime();
                    if (job.task().generates()) {
                        cacheKeys[i] = sha256(job.image()) + "|" + generationId;
                        cached[i] = cache.get(cacheKeys[i]);
                    }
                    if (cached[i] == null) {
                        pixels[i] = model.processor().preprocess(decoder.decode(job.image()));
                    }
                    preprocessMs[i] = ms(System.nanoTime() - t0);
                }
                if (job.task().generates()) {
                    checkPrompt(job);
                    generate.add(i);
                } else {
                    retrieve.add(i);
                }
            } catch (ImageDecodeException e) {
                out[i] = failed(job, new RequestError(RequestError.INVALID_IMAGE, e.getMessage(), e));
            } catch (RequestError e) {
                out[i] = failed(job, e);
            } catch (RuntimeException e) {
                out[i] = failed(job, internal(job, e));
            }
        }
        if (!generate.isEmpty()) {
            runGeneration(jobs, generate, pixels, cached, cacheKeys, preprocessMs, batchStart, sink, out);
        }
        for (int i : retrieve) {
            out[i] = runRetrieval(jobs.get(i), pixels[i], preprocessMs[i], batchStart);
        }
        return List.of(out);
    }

    private void checkPrompt(InferenceJob job) {
        String prompt = prompt(job);
        int n = generation.promptIds(prompt).length;
        if (n > limits.maxPromptTokens()) {
            throw new RequestError(RequestError.PROMPT_TOO_LONG, "the prompt has " + n + " tokens; the limit is " + limits.maxPromptTokens());
        }
        var lm = generation.config().text();
        if (!lm.isEncoderDecoder()) {
            int positions = generation.numQueryTokens() + n + job.params().maxNewTokens();
            int max = generation.config().opt().maxPositionEmbeddings();
            if (positions > max) {
                throw new RequestError(RequestError.PROMPT_TOO_LONG, "the prompt (" + n + " tokens after " + generation.numQueryTokens()
                        + " queries) plus max_new_tokens " + job.params().maxNewTokens() + " exceeds the model's " + max + " positions");
            }
        }
    }

    private String prompt(InferenceJob job) {
        return job.task() == Task.VQA ? generation.vqaPrompt(job.question()) : job.prompt();
    }

    private void runGeneration(List<InferenceJob> jobs, List<Integer> rows, float[][] pixels, float[][] cached, String[] cacheKeys,
                               double[] preprocessMs, long batchStart, TokenSink sink, Outcome[] out) {
        // the images not in the cache go through the vision encoder and the Q-Former in one batch
        float[][] prompts = new float[jobs.size()][];
        List<Integer> misses = new ArrayList<>();
        for (int i : rows) {
            if (cached[i] != null) {
                prompts[i] = cached[i];
            } else {
                misses.add(i);
            }
        }
        double visionMs = 0;
        double qformerMs = 0;
        if (!misses.isEmpty()) {
            try {
                List<float[]> px = new ArrayList<>();
                for (int i : misses) {
                    px.add(pixels[i]);
                }
                Blip2Model.ImageFeatures features = generation.encodeImages(px, false);
                for (int k = 0; k < misses.size(); k++) {
                    int i = misses.get(k);
                    prompts[i] = generation.visualPrompt(features, k);
                    cache.put(cacheKeys[i], prompts[i]);
                }
                visionMs = ms(features.visionNanos());
                qformerMs = ms(features.qformerNanos());
            } catch (RuntimeException e) {
                for (int i : misses) {
                    out[i] = failed(jobs.get(i), internal(jobs.get(i), e));
                }
                rows = rows.stream().filter(i -> prompts[i] != null && out[i] == null).toList();
            }
        }
        // rows with equal generation parameters decode together
        Map<GenerationParams, List<Integer>> groups = new LinkedHashMap<>();
        for (int r = 0; r < rows.size(); r++) {
            groups.computeIfAbsent(jobs.get(rows.get(r)).params(), k -> new ArrayList<>()).add(r);
        }
        for (Map.Entry<GenerationParams, List<Integer>> g : groups.entrySet()) {
            List<Integer> members = g.getValue();
            List<Blip2Model.GenerationRequest> requests = new ArrayList<>();
            List<InferenceJob> groupJobs = new ArrayList<>();
            for (int r : members) {
                InferenceJob job = jobs.get(rows.get(r));
                groupJobs.add(job);
                requests.add(new Blip2Model.GenerationRequest(prompts[rows.get(r)], prompt(job)));
            }
            try {
                List<Blip2Model.GenerationResult> results = generation.generate(requests, g.getKey(), new Blip2Model.TextListener() {
                    @Override
                    public void onToken(int row, int index, int tokenId, String text) {
                        sink.onToken(groupJobs.get(row), index, tokenId, text);
                        if (limits.stepDelayMs() > 0) {
                            try {
                                Thread.sleep(limits.stepDelayMs());
                            } catch (InterruptedException e) {
                                Thread.currentThread().interrupt();
                            }
                        }
                    }

                    @Override
                    public boolean isCancelled(int row) {
                        return sink.isCancelled(groupJobs.get(row));
                    }
                });
                long end = System.nanoTime();
                for (int k = 0; k < members.size(); k++) {
                    int i = rows.get(members.get(k));
                    InferenceJob job = jobs.get(i);
                    Blip2Model.GenerationResult r = results.get(k);
                    out[i] = new Outcome(job, new InferenceResult(job, modelName(job.task()), r.text(), r.tokenIds(),
                            r.finishReason(), null, null, null,
                            new InferenceResult.Timings(ms(batchStart - job.acceptedNanos()), preprocessMs[i],
                                    cached[i] != null ? 0 : visionMs, cached[i] != null ? 0 : qformerMs,
                                    ms(r.prefillNanos()), ms(r.decodeNanos()), ms(end - job.acceptedNanos()), cached[i] != null)), null);
                }
            } catch (RuntimeException e) {
                for (int r : members) {
                    InferenceJob job = jobs.get(rows.get(r));
                    out[rows.get(r)] = failed(job, internal(job, e));
                }
            }
        }
    }

    private Outcome runRetrieval(InferenceJob job, float[] pixels, double preprocessMs, long batchStart) {
        try {
            long t0 = System.nanoTime();
            List<Blip2Model.MatchResult> matches = null;
            float[][] imageEmbeds = null;
            float[][] textEmbeds = null;
            double visionMs = 0;
            double qformerMs = 0;
            if (job.task() == Task.MATCH) {
                matches = retrieval.match(pixels, job.texts());
            } else {
                if (pixels != null) {
                    Blip2Model.ImageFeatures f = retrieval.encodeImages(List.of(pixels), false);
                    imageEmbeds = rows(f.imageEmbeds(), retrieval.embeddingSize());
                    visionMs = ms(f.visionNanos());
                    qformerMs = ms(f.qformerNanos());
                }
                if (job.texts() != null && !job.texts().isEmpty()) {
                    textEmbeds = rows(retrieval.embedTexts(job.texts()), retrieval.embeddingSize());
                }
            }
            long end = System.nanoTime();
            if (job.task() == Task.MATCH) {
                visionMs = ms(end - t0); // vision, Q-Former and heads together
            }
            return new Outcome(job, new InferenceResult(job, modelName(job.task()), null, null, null, matches, imageEmbeds, textEmbeds,
                    new InferenceResult.Timings(ms(batchStart - job.acceptedNanos()), preprocessMs, visionMs, qformerMs, 0, 0,
                            ms(end - job.acceptedNanos()), false)), null);
        } catch (IllegalArgumentException e) {
            return failed(job, new RequestError(RequestError.PROMPT_TOO_LONG, e.getMessage(), e));
        } catch (RuntimeException e) {
            return failed(job, internal(job, e));
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static float[][] rows(float[] flat, int width) {
        float[][] out = new float[flat.length / width][];
        for (int i = 0; i < out.length; i++) {
            out[i] = java.util.Arrays.copyOfRange(flat, i * width, (i + 1) * width);
        }
        return out;
    }

    private static Outcome failed(InferenceJob job, RequestError e) {
        return new Outcome(job, null, e);
    }

    private static RequestError internal(InferenceJob job, RuntimeException e) {
        LOG.error("request {} failed", job.id(), e);
        return new RequestError(RequestError.INTERNAL, "inference failed: " + e);
    }

    private static double ms(long nanos) {
        return Math.round(nanos / 1e4) / 100.0;
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
