package io.blip2stream.model;

import io.blip2stream.engine.Engines;

class OptParityPytorchTest extends GenerationParityTest {
    @Override
    Engines.Kind engine() {
        return Engines.Kind.PYTORCH;
    }

    @Override
    String fixture() {
        return "blip2-opt-tiny";
    }
}
