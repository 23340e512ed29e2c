package io.blip2stream.model.weights;

import io.blip2stream.model.Fixtures;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.config.OptConfig;
import io.blip2stream.model.config.QFormerConfig;
import io.blip2stream.model.config.VisionConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The weight-name tree our writers use is transformers' own: for checkpoints transformers saved (the fixtures), the
 * tree built from their config names every tensor they hold, with its shape, and no other.
 */
class Blip2WeightTreeTest {

    @ParameterizedTest
    @ValueSource(strings = {"blip2-opt-tiny", "blip2-itm-tiny"})
    void theTreeIsTransformersTree(String fixture) throws Exception {
        Path dir = Fixtures.model(fixture);
        Blip2Config c = Blip2Config.load(dir);
        VisionConfig v = c.vision();
        QFormerConfig q = c.qformer();
        OptConfig opt = c.isRetrieval() ? null : c.opt();
        Blip2WeightTree.Shapes shapes = new Blip2WeightTree.Shapes(v.patchSize(), v.imageSize() / v.patchSize(), v.hiddenSize(),
                v.intermediateSize(), v.numHiddenLayers(), c.numQueryTokens(), q.hiddenSize(), q.intermediateSize(),
                q.numHiddenLayers(), q.vocabSize(), q.maxPositionEmbeddings(), c.imageTextHiddenSize(),
                opt == null ? 0 : opt.hiddenSize(), opt == null ? 0 : opt.ffnDim(), opt == null ? 0 : opt.numHiddenLayers(),
                opt == null ? 0 : opt.vocabSize(), opt == null ? 0 : opt.maxPositionEmbeddings(),
                opt == null ? 0 : opt.wordEmbedProjDim(), opt != null && opt.doLayerNormBefore());
        Map<String, String> tree = new TreeMap<>();
        for (Blip2WeightTree.Tensor t : Blip2WeightTree.tensors(shapes, !c.isRetrieval(), c.isRetrieval())) {
            tree.put(t.name(), java.util.Arrays.toString(t.shape()));
        }
        Map<String, String> stored = new TreeMap<>();
        try (Weights w = Weights.open(dir)) {
            for (String name : w.names()) {
                stored.put(name, java.util.Arrays.toString(w.shape(name)));
            }
        }
        assertEquals(stored, tree);
    }
}
