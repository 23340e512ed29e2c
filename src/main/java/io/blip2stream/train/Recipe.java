package io.blip2stream.train;

/**
 * The training recipe: the model's shapes, the scenes, and per stage its steps, batch size and learning rates.
 * {@link #defaults()} is the documented run (docs/training.md: its time on 2 cores); {@link #withSteps} shortens every stage
 * for smoke runs.
 */
public record Recipe(SceneModelSpec spec, int trainScenes, long seed, Stage vision, Stage languageModel,
                     Stage representation, Stage generative, Stage languageModelT5, Stage generativeT5, int evalScenes) {

    /** One stage: steps, batch size, warm-up steps, peak and final learning rate. */
    public record Stage(int steps, int batch, int warmup, float peakLr, float minLr) {
        Schedule schedule() {
            return new Schedule(steps, warmup, peakLr * 0.01f, peakLr, minLr);
        }

        Stage withSteps(int s) {
            return new Stage(s, batch, Math.min(warmup, Math.max(0, s / 10)), peakLr, minLr);
        }

        /** A fine-tuning of {@code f} of the steps at a tenth of the learning rates (CapFilt's, on the clean subset). */
        Stage fineTuning(double f) {
            Stage s = scaled(f);
            return new Stage(s.steps, batch, s.warmup, peakLr / 10, minLr / 10);
        }

        Stage scaled(double f) {
            int s = Math.max(1, (int) Math.round(steps * f));
            return new Stage(s, batch, Math.max(0, (int) Math.round(warmup * f)), peakLr, minLr);
        }
    }

    public static Recipe defaults() {
        return new Recipe(SceneModelSpec.defaults(), 20_000, 42,
                // the ViT: the captions' and answers' misses were nearly all its counts (four -> three); at 2000
                // steps its training batches counted 98% right (loss 0.30), at 5000 99.5% (loss 0.06)
                new Stage(5000, 48, 100, 1e-3f, 1e-5f),
                // the LM learns to copy each kind of word from its context at its own time (the copy_* curves; all
                // by step 1000 with the documents of now) and yes/no last (0.97 at step ~3800); stage 2 can only
                // carry what it reads
                new Stage(6000, 64, 200, 2e-3f, 2e-5f),
                // stage 1: at 1500 steps its ITM loss still fell and ended at 0.085 to 0.245 in three runs (R@1 ITM
                // image-to-text 56-92%); at 4000, R@1 95.0%, but the OPT's captions after stage 2 fell to 88.0%; at
                // 2500, R@1 93.7% and captions 92.7% (docs/training.md, issue 25's runs)
                new Stage(2500, 32, 100, 1e-3f, 1e-5f),
                // BLIP-2: a minimum learning rate in the second stage. Each attribute reaches the LM at its own time
                // (the acc_* curves): with 5000 steps place came last (0.66 at step 3000, 0.86 at 4000, 0.98 at 5000)
                // and held-out caption exact match was 89.7%. Warm-up of 1000 steps: the projection starts random
                // and its first gradients, at the full rate, bent stage 1's Q-Former out of shape (after a warm-up of
                // 50 the colour answers learnt slowly and stayed at 93% held out, yellow answered "green"; after
                // 1000, 100%, and VQA 96.2% -> 98.3%; docs/training.md)
                new Stage(6000, 32, 1000, 1e-3f, 5e-5f),
                // the encoder-decoder branch: T5's prefix-LM pretraining (its loss is on the targets alone: it copied
                // every kind of attribute word 80-88% of the time by step 200), then stage 2 from stage 1's Q-Former
                new Stage(3000, 64, 200, 5e-4f, 5e-6f),
                new Stage(6000, 32, 1000, 1e-3f, 5e-5f), // the same warm-up: a random projection into stage 1's Q-Former
                300);
    }

    /** The encoder-decoder branch's shapes: the same ViT and Q-Former, a T5 language model. */
    public SceneModelSpec t5Spec() {
        return spec.withLanguageModel(SceneModelSpec.LanguageModelKind.T5);
    }

    /**
     * What BLIP-2's stages train and the checkpoints hold: the pretrained ViT without its last layer. The paper
     * removes its ViT's last layer and reads the second-last layer's output ("slightly better performance"); here
     * too (docs/training.md: on the same frozen encoders, VQA 99.7% against 97.6% for the OPT, whose colour answers
     * with the last layer were 92.7% right, and R@1 ITM 99.3% / 100% against 98.0% / 99.7%).
     */
    public SceneModelSpec blip2Spec() {
        return spec.withVisionLayers(spec.vLayers() - 1);
    }

    /** {@link #blip2Spec()} with the T5 language model. */
    public SceneModelSpec blip2T5Spec() {
        return t5Spec().withVisionLayers(spec.vLayers() - 1);
    }

    public Recipe withSteps(int steps) {
        return new Recipe(spec, trainScenes, seed, vision.withSteps(steps), languageModel.withSteps(steps),
                representation.withSteps(steps), generative.withSteps(steps), languageModelT5.withSteps(steps),
                generativeT5.withSteps(steps), evalScenes);
    }

    public Recipe scaled(double f) {
        return new Recipe(spec, trainScenes, seed, vision.scaled(f), languageModel.scaled(f), representation.scaled(f),
                generative.scaled(f), languageModelT5.scaled(f), generativeT5.scaled(f), evalScenes);
    }

    public Recipe withEvalScenes(int n) {
        return new Recipe(spec, trainScenes, seed, vision, languageModel, representation, generative, languageModelT5,
                generativeT5, n);
    }

    public Recipe withSeed(long s) {
        return new Recipe(spec, trainScenes, s, vision, languageModel, representation, generative, languageModelT5,
                generativeT5, evalScenes);
    }
}
