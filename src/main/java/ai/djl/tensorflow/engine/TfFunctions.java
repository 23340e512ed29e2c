package ai.djl.tensorflow.engine;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import org.tensorflow.internal.c_api.TFE_Context;
import org.tensorflow.internal.c_api.TF_Status;
import org.tensorflow.internal.c_api.TF_Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.tensorflow.internal.c_api.global.tensorflow.TFE_TensorHandleResolve;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_DeleteStatus;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_DeleteTensor;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_GetCode;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_Message;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_NewStatus;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_TensorByteSize;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_TensorData;

/**
 * A bridge into DJL's TensorFlow engine for what its public API does not offer: the eager context (where
 * functions are registered), calling a registered function as one op, and reading an array's memory in place. It
 * sits in DJL's package because DJL's op executor is package-private. Pinned to DJL 0.36.
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

    /**
     * The memory of a CPU array, in place (no copy), as a little-endian buffer: valid while the array is open, and
     * only to be read (TensorFlow assumes its tensors never change). The caller must not use it after the array closes.
     */
    public static ByteBuffer memory(NDArray array) {
        if (!array.getDevice().equals(ai.djl.Device.cpu())) {
            // a GPU array resolves to a host copy that would be freed here: the buffer would point at freed memory
            throw new IllegalArgumentException("only a CPU array's memory can be read in place, not " + array.getDevice());
        }
        TF_Status status = TF_NewStatus();
        try {
            // a second reference to the array's buffer, dropped at once: the array's own handle keeps the memory
            TF_Tensor t = TFE_TensorHandleResolve(((TfNDArray) array).getHandle(), status);
            if (TF_GetCode(status) != 0) {
                throw new IllegalStateException("TensorFlow: " + TF_Message(status).getString());
            }
            try {
                long bytes = TF_TensorByteSize(t);
                if (bytes > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("array of " + bytes + " bytes is larger than a buffer can address");
                }
                return TF_TensorData(t).capacity(bytes).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            } finally {
                TF_DeleteTensor(t);
            }
        } finally {
            TF_DeleteStatus(status);
        }
    }
}
