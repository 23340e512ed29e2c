package ai.djl.tensorflow.engine;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import org.tensorflow.internal.c_api.TFE_Context;

/**
 * A bridge into DJL's TensorFlow engine for what its public API does not offer: the eager context (where
 * functions are registered) and calling a registered function as one op. It sits in DJL's package because
 * DJL's op executor is package-private; it uses nothing else of DJL's internals. Pinned to DJL 0.36.
 */
public final class TfFunctions {
    private TfFunctions() {}

    /** The TensorFlow eager context of {@code manager}'s engine. */
    public static TFE_Context context(NDManager manager) {
        return ((TfNDManager) manager).getEagerSession();
    }

    /** Runs the function {@code name} (registered in the context) on {@code inputs}; its outputs live in {@code manager}. */
    public static NDArray[] call(NDManager manager, String name, NDArray[] inputs, int outputs) {
        TfOpExecutor op = ((TfNDManager) manager).opExecutor(name);
        for (NDArray x : inputs) {
            op.addInput(x);
        }
        return op.build(outputs);
    }
}
