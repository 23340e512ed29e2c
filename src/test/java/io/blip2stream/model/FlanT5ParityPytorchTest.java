package io.blip2stream.model;

import io.blip2stream.engine.Engines;

class FlanT5ParityPytorchTest extends GenerationParityTest {
    @Override
    Engines.Kind engine() {
        return Engines.Kind.PYTORCH;
    }

    @Override
    String fixture() {
        return "blip2-flant5-tiny";
    }
}
