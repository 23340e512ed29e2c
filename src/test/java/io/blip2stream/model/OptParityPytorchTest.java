package io.blip2stream.model;

import io.blip2stream.engine.Engines;

class OptParityPytorchTest extends OptParityTest {
    @Override
    Engines.Kind engine() {
        return Engines.Kind.PYTORCH;
    }
}
