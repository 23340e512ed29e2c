package io.blip2stream.archviolation.b;

import io.blip2stream.archviolation.a.Upstream;
import org.tensorflow.internal.c_api.TF_Status;

/** A deliberate violation for ArchitectureTest: the loop back, and TensorFlow's C API outside model.nn.tf. */
public class Downstream {
    Upstream back;
    TF_Status status;
}
