package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.model.Fixtures;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Blip2ConfigTest {
    @Test
    void missingKeysTakeTransformersDefaults() throws Exception {
        Blip2Config c = Blip2Config.parse(new ObjectMapper().readTree("{}"));
        assertEquals(1408, c.vision().hiddenSize());
        assertEquals(39, c.vision().numHiddenLayers());
        assertEquals(14, c.vision().patchSize());
        assertEquals(257, c.vision().numPositions());
        assertEquals(768, c.qformer().hiddenSize());
        assertEquals(1408, c.qformer().encoderHiddenSize());
        assertEquals(2, c.qformer().crossAttentionFrequency());
        assertEquals(32, c.numQueryTokens());
        assertNull(c.imageTokenIndex());
        OptConfig opt = c.opt();
        assertEquals(50272, opt.vocabSize());
        assertTrue(opt.doLayerNormBefore());
        assertEquals(2, opt.bosTokenId());
    }

    @Test
    void readsTheFixtureConfig() {
        Blip2Config c = Blip2Config.load(Fixtures.model("blip2-opt-tiny"));
        assertEquals(400, c.imageTokenIndex());
        assertEquals(8, c.numQueryTokens());
        assertEquals(64, c.vision().hiddenSize());
        assertEquals(1e-6, c.vision().layerNormEps());
        assertTrue(c.qformer().hasCrossAttention(0));
        assertFalse(c.qformer().hasCrossAttention(1));
        assertEquals(401, c.opt().vocabSize());
        PreprocessorConfig p = PreprocessorConfig.load(Fixtures.model("blip2-opt-tiny"), 224);
        assertEquals(224, p.height());
        assertEquals(3, p.resample());
        assertEquals(0.48145466f, p.imageMean()[0]);
    }

    @Test
    void unsupportedLanguageModelsAreNamed() throws Exception {
        var e = assertThrows(IllegalArgumentException.class,
                () -> Blip2Config.parse(new ObjectMapper().readTree("{\"text_config\":{\"model_type\":\"llama\"}}")));
        assertTrue(e.getMessage().contains("llama"), e.getMessage());
    }
}
