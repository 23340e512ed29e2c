package io.blip2stream.model.weights;

import io.blip2stream.model.Fixtures;
import io.blip2stream.model.config.Blip2Config;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The weight-name tree our writers use is transformers' own: for checkpoints transformers saved (the fixtures), the
 * tree built from their config names every tensor they hold, with its shape, and no other.
 */
class Blip2WeightTreeTest {

    @ParameterizedTest
    @ValueSource(strings = {"blip2-opt-tiny", "blip2-itm-tiny", "blip2-flant5-tiny"})
    void theTreeIsTransformersTree(String fixture) throws Exception {
        Path dir = Fixtures.model(fixture);
        Blip2Config c = Blip2Config.load(dir);
        Map<String, String> tree = new TreeMap<>();
        for (Blip2WeightTree.Tensor t : Blip2WeightTree.tensors(c)) {
            tree.put(t.name(), java.util.Arrays.toString(t.shape()));
        }
        Map<String, String> stored = new TreeMap<>();
        try (Weights w = Weights.open(dir)) {
            for (String name : w.names()) {
                stored.put(name, java.util.Arrays.toString(w.shape(name)));
            }
        }
        assertEquals(stored, tree);
        assertEquals(List.of(), Blip2WeightTree.unexpected(c, stored.keySet()), "the loader finds nothing it does not use");
        List<String> more = new java.util.ArrayList<>(stored.keySet());
        more.add("vision_model.encoder.layers.0.self_attn.q_bias"); // a variant the loader takes
        more.add("language_model.lm_head.weight");
        more.add("qformer.encoder.layer.0.attention.attention.rotary.weight"); // not BLIP-2's
        more.add("text_decoder.cls.predictions.bias");
        assertEquals(List.of("qformer.encoder.layer.0.attention.attention.rotary.weight", "text_decoder.cls.predictions.bias"),
                Blip2WeightTree.unexpected(c, more));
    }

    /** transformers' variants (q_bias and v_bias, project_in and _out, no final layer norm, shards, bf16): all read. */
    @ParameterizedTest
    @ValueSource(strings = {"extra/blip2-opt-projio-postln-f16", "extra/blip2-itm-variant", "extra/blip2-opt-bf16-sharded-eos"})
    void theLoaderUsesEveryTensorOfTransformersVariants(String fixture) throws Exception {
        Path dir = Fixtures.model(fixture);
        try (Weights w = Weights.open(dir)) {
            assertEquals(List.of(), Blip2WeightTree.unexpected(Blip2Config.load(dir), w.names()));
        }
    }

    /** T5's stacks' token embeddings are the shared ones: an export that saves them too is read, nothing else is. */
    @Test
    void aT5CheckpointMayHoldItsStacksTiedEmbeddings() throws Exception {
        Blip2Config t5 = Blip2Config.load(Fixtures.model("blip2-flant5-tiny"));
        assertTrue(Blip2WeightTree.shapes(t5).isPresent());
        assertEquals(List.of("language_model.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.bias"),
                Blip2WeightTree.unexpected(t5, List.of("language_model.encoder.embed_tokens.weight",
                        "language_model.decoder.embed_tokens.weight", "language_model.lm_head.weight",
                        "language_model.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.bias")));
    }

    /** A config whose layer counts no checkpoint has is not expanded into a tree (it would not fit in memory). */
    @ParameterizedTest
    @ValueSource(strings = {"blip2-flant5-tiny", "blip2-opt-tiny"})
    void aConfigOfABillionLayersIsNotExpanded(String fixture) throws Exception {
        com.fasterxml.jackson.databind.node.ObjectNode n = (com.fasterxml.jackson.databind.node.ObjectNode)
                new com.fasterxml.jackson.databind.ObjectMapper().readTree(Fixtures.model(fixture).resolve("config.json").toFile());
        com.fasterxml.jackson.databind.node.ObjectNode text = (com.fasterxml.jackson.databind.node.ObjectNode) n.get("text_config");
        text.put(text.has("num_layers") ? "num_layers" : "num_hidden_layers", 1_000_000_000);
        Blip2Config c = Blip2Config.parse(n);
        assertTrue(Blip2WeightTree.shapes(c).isEmpty());
        assertEquals(List.of(), Blip2WeightTree.tensors(c));
        assertEquals(List.of(), Blip2WeightTree.unexpected(c, List.of("language_model.x")));
    }
}
