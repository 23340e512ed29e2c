package io.blip2stream.engine;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;

import java.io.File;
import java.net.URL;
import java.util.List;
import java.util.Locale;

/**
 * Chooses the DJL engine that runs the model and makes its natives loadable offline.
 *
 * <p>TensorFlow is the default. DJL's own TensorFlow native jar is not on Maven Central after 2.10.1 and DJL
 * would download one at run time; instead the TensorFlow 2.16 natives come from
 * {@code org.tensorflow:tensorflow-core-native} (classifier {@code linux-x86_64}), which JavaCPP extracts into
 * its cache, and DJL is pointed there through {@code TENSORFLOW_LIBRARY_PATH}. PyTorch's natives come from
 * {@code ai.djl.pytorch:pytorch-native-cpu} on the class path.
 */
public final class Engines {

    /** The engines the model code runs on. */
    public enum Kind {
        TENSORFLOW("TensorFlow"),
        PYTORCH("PyTorch");

        private final String djlName;

        Kind(String djlName) {
            this.djlName = djlName;
        }

        public String djlName() {
            return djlName;
        }

        public static Kind parse(String name) {
            String n = name.trim().toLowerCase(Locale.ROOT);
            switch (n) {
                case "tensorflow":
                case "tf":
                    return TENSORFLOW;
                case "pytorch":
                case "torch":
                case "pt":
                    return PYTORCH;
                default:
                    throw new IllegalArgumentException("unknown engine '" + name + "' (expected tensorflow or pytorch)");
            }
        }
    }

    private static final List<String> TF_LIBS =
            List.of("libtensorflow_framework.so.2", "libtensorflow_cc.so.2", "libjnitensorflow.so");

    private static volatile boolean tensorflowPrepared;

    private Engines() {}

    /** A new root manager on the given engine, on the CPU; the caller closes it. */
    public static NDManager newManager(Kind kind) {
        return engine(kind).newBaseManager();
    }

    /**
     * A new root manager on the given engine and device ({@code cpu} or {@code gpu:N}); the caller closes it.
     * A GPU needs the engine's GPU natives on the class path (see deploy/).
     */
    public static NDManager newManager(Kind kind, String device) {
        Engine e = engine(kind);
        if (device == null || device.equals("cpu")) {
            return e.newBaseManager(ai.djl.Device.cpu());
        }
        if (!device.startsWith("gpu:")) {
            throw new IllegalArgumentException("device '" + device + "' is not cpu or gpu:N");
        }
        int id = Integer.parseInt(device.substring(4));
        if (id >= e.getGpuCount()) {
            throw new IllegalStateException("device " + device + " is not available to " + kind.djlName()
                    + " (it sees " + e.getGpuCount() + " GPUs; TensorFlow 2.16's GPU natives need CUDA 12 and cuDNN 8.9, "
                    + "libcudnn.so.8: deploy/Dockerfile.gpu)");
        }
        return e.newBaseManager(ai.djl.Device.gpu(id));
    }

    public static Engine engine(Kind kind) {
        System.setProperty("ai.djl.offline", "true");
        if (kind == Kind.TENSORFLOW) {
            prepareTensorflowNatives();
        } else {
            // pytorch-native-cpu is on the class path: no download, CPU flavour
            if (System.getProperty("PYTORCH_FLAVOR") == null && System.getenv("PYTORCH_FLAVOR") == null) {
                System.setProperty("PYTORCH_FLAVOR", "cpu");
            }
        }
        Engine engine = Engine.getEngine(kind.djlName());
        if (engine == null) {
            throw new IllegalStateException("DJL engine " + kind.djlName() + " is not available");
        }
        return engine;
    }

    /** Extracts the TensorFlow natives from the class path once and tells DJL where they are. */
    static synchronized void prepareTensorflowNatives() {
        if (tensorflowPrepared || System.getProperty("TENSORFLOW_LIBRARY_PATH") != null
                || System.getenv("TENSORFLOW_LIBRARY_PATH") != null) {
            tensorflowPrepared = true;
            return;
        }
        ClassLoader loader = Engines.class.getClassLoader();
        String dir = null;
        try {
            for (String lib : TF_LIBS) {
                // the GPU build (classifier linux-x86_64-gpu) keeps its libraries under its platform's name
                URL u = loader.getResource("org/tensorflow/internal/c_api/linux-x86_64-gpu/" + lib);
                if (u == null) {
                    u = loader.getResource("org/tensorflow/internal/c_api/linux-x86_64/" + lib);
                }
                if (u == null) {
                    throw new IllegalStateException("TensorFlow native " + lib
                            + " is not on the class path (org.tensorflow:tensorflow-core-native:linux-x86_64)");
                }
                File f = org.bytedeco.javacpp.Loader.cacheResource(u);
                dir = f.getParent();
            }
        } catch (java.io.IOException e) {
            throw new IllegalStateException("cannot extract the TensorFlow natives: " + e.getMessage(), e);
        }
        System.setProperty("TENSORFLOW_LIBRARY_PATH", dir);
        tensorflowPrepared = true;
    }
}
