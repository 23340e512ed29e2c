package io.blip2stream.model.nn.tf;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.tensorflow.engine.TfFunctions;

import java.nio.ByteBuffer;

/**
 * What the model asks of TensorFlow's eager runtime beyond DJL's API: calling a function registered by
 * {@link TfGraph} as one op, and reading a CPU array's memory in place. The rest of the model reaches TensorFlow
 * only through this package (an ArchUnit rule holds it to that).
 */
public final class TfEager {
    private TfEager() {}

    /** Runs the function {@code name} (registered with {@link TfGraph#register}) on {@code inputs}; its outputs live in {@code manager}. */
    public static NDArray[] call(NDManager manager, String name, NDArray[] inputs, int outputs) {
        return TfFunctions.call(manager, name, inputs, outputs);
    }

    /**
     * The memory of a CPU array, in place, as a little-endian buffer: valid while the array is open, and only to be
     * read (TensorFlow assumes its tensors never change).
     */
    public static ByteBuffer memory(NDArray array) {
        return TfFunctions.memory(array);
    }
}
