package io.blip2stream.engine;

import io.blip2stream.common.Millis;
import io.blip2stream.model.Blip2Model;
import io.blip2stream.model.image.ImageDecodeException;
import io.blip2stream.model.image.ImageDecoder;

import java.util.List;

/** The runner's retrieval tasks, one job at a time: match and embed on a {@code Blip2ForImageTextRetrieval} checkpoint. */
final class RetrievalJobs {
    private RetrievalJobs() {}

    /**
     * Match (ITM and ITC of each text against the image) or embed (the image's query embeddings, the texts'
     * embeddings) on the retrieval checkpoint; any failure is the job's own outcome.
     */
    static InferenceRunner.Outcome run(InferenceRunner runner, Blip2Model retrieval, ImageDecoder decoder, InferenceJob job,
                                       long batchStart) {
        try {
            if (retrieval == null) {
                throw new RequestError(RequestError.UNSUPPORTED_TASK, "no retrieval model is loaded for task " + job.task().wireName());
            }
            long p0 = System.nanoTime();
            float[] pixels = job.image() == null ? null : retrieval.processor().preprocess(decoder.decode(job.image()));
            double preprocessMs = Millis.ofNanos(System.nanoTime() - p0);
            long t0 = System.nanoTime();
            InferenceResult.Output output;
            double visionMs = 0;
            double qformerMs = 0;
            if (job.input() instanceof InferenceJob.Match m) {
                output = new InferenceResult.Matched(retrieval.retrieval().match(pixels, m.texts(), m.textIds()));
                visionMs = Millis.ofNanos(System.nanoTime() - t0); // vision, Q-Former and heads together
            } else {
                InferenceJob.Retrieval r = job.retrieval();
                float[][] imageEmbeds = new float[0][];
                float[][] textEmbeds = new float[0][];
                if (pixels != null) {
                    Blip2Model.ImageFeatures f = retrieval.encodeImages(List.of(pixels), false);
                    imageEmbeds = rows(f.imageEmbeds(), retrieval.retrieval().embeddingSize());
                    visionMs = Millis.ofNanos(f.visionNanos());
                    qformerMs = Millis.ofNanos(f.qformerNanos());
                }
                if (!r.texts().isEmpty()) {
                    textEmbeds = rows(retrieval.retrieval().embedTextIds(r.textIds()), retrieval.retrieval().embeddingSize());
                }
                output = new InferenceResult.Embedded(imageEmbeds, textEmbeds);
            }
            long end = System.nanoTime();
            return new InferenceRunner.Outcome(job, new InferenceResult(job, runner.modelName(job.task()), output,
                    new InferenceResult.Timings(Millis.ofNanos(batchStart - job.acceptedNanos()), preprocessMs, visionMs, qformerMs, 0, 0,
                            Millis.ofNanos(end - job.acceptedNanos()), false)), null);
        } catch (ImageDecodeException e) {
            return InferenceRunner.failed(job, new RequestError(RequestError.INVALID_IMAGE, e.getMessage(), e));
        } catch (RequestError e) {
            return InferenceRunner.failed(job, e);
        } catch (IllegalArgumentException e) {
            return InferenceRunner.failed(job, new RequestError(RequestError.PROMPT_TOO_LONG, e.getMessage(), e));
        } catch (RuntimeException e) {
            return InferenceRunner.failed(job, InferenceRunner.internal(job, e));
        }
    }

    /** [n * width] to n rows of width. */
    private static float[][] rows(float[] flat, int width) {
        float[][] out = new float[flat.length / width][];
        for (int i = 0; i < out.length; i++) {
            out[i] = java.util.Arrays.copyOfRange(flat, i * width, (i + 1) * width);
        }
        return out;
    }
}
