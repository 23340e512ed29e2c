package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.index.NDIndex;
import io.blip2stream.train.scenes.Scene;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * The "off-the-shelf" image encoder: the ViT trained from scratch on the scenes with a supervised attribute
 * objective (count, shape, colour and place, a linear head each), then frozen for BLIP-2. Each head reads both the
 * [CLS] output and the mean of the patch outputs (one loss each): with [CLS] alone the patch outputs, which are most
 * of what the Q-Former's cross-attention reads, kept where the objects are but hardly where in the image they lie (a
 * linear probe of their mean found the place 81% of the time against 99% from [CLS]), and stage 2 never carried the
 * place through to the language model.
 */
final class VisionPretraining {
    private VisionPretraining() {}

    static final Predicate<String> PARAMETERS = n -> n.startsWith("vision_model.") || n.startsWith("train.vision_heads.");

    static int[] labels(Scene s) {
        return new int[] {s.count() - 1, s.shape().ordinal(), s.colour().ordinal(), s.place().ordinal()};
    }

    static TrainLoop.Step step(SceneModel model, SceneData data, int batch) {
        return (scope, step) -> {
            List<Scene> scenes = data.batch(step, batch);
            NDArray pixels = data.pixels(scope, scenes, true, new SplittableRandom(step * 7919L + 1));
            NDArray out = model.vision.forward(pixels);                               // (B, 1+P, D)
            NDArray cls = out.get(new NDIndex(":, 0, :"));                              // (B, D)
            NDArray pooled = out.get(new NDIndex(":, 1:, :")).mean(new int[] {1});       // (B, D)
            NDArray total = null;
            Map<String, NDArray> parts = new LinkedHashMap<>();
            for (int a = 0; a < SceneModelSpec.ATTRIBUTES.length; a++) {
                int[] y = new int[scenes.size()];
                for (int i = 0; i < y.length; i++) {
                    y[i] = labels(scenes.get(i))[a];
                }
                float[][] target = Losses.oneHot(y, SceneModelSpec.ATTRIBUTE_CLASSES[a]);
                NDArray logits = model.attributeHeads.get(a).forward(cls);             // (B, classes)
                NDArray pooledLogits = model.attributeHeads.get(a).forward(pooled);    // (B, classes)
                NDArray loss = Losses.crossEntropy(logits, target).add(Losses.crossEntropy(pooledLogits, target));
                total = total == null ? loss : total.add(loss);
                parts.put(SceneModelSpec.ATTRIBUTES[a] + "_acc", scope.create((float) Losses.accuracy(logits, y)));
                parts.put(SceneModelSpec.ATTRIBUTES[a] + "_acc_pooled", scope.create((float) Losses.accuracy(pooledLogits, y)));
            }
            return new TrainLoop.Losses(total, parts);
        };
    }
}
