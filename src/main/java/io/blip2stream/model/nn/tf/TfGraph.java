package io.blip2stream.model.nn.tf;

import ai.djl.ndarray.NDManager;
import ai.djl.tensorflow.engine.TfFunctions;
import org.bytedeco.javacpp.BytePointer;
import org.tensorflow.internal.c_api.TF_Function;
import org.tensorflow.internal.c_api.TF_Graph;
import org.tensorflow.internal.c_api.TF_Operation;
import org.tensorflow.internal.c_api.TF_OperationDescription;
import org.tensorflow.internal.c_api.TF_Output;
import org.tensorflow.internal.c_api.TF_Status;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static org.tensorflow.internal.c_api.global.tensorflow.TFE_ContextAddFunction;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_AddInput;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_AddInputList;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_DeleteFunction;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_DeleteGraph;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_DeleteStatus;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_FinishOperation;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_GetCode;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_GraphToFunction;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_Message;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_NewGraph;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_NewOperation;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_NewStatus;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_SetAttrBool;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_SetAttrInt;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_SetAttrIntList;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_SetAttrString;
import static org.tensorflow.internal.c_api.global.tensorflow.TF_SetAttrType;

/**
 * A TensorFlow graph built op by op through the C API and registered as a function in the engine's eager
 * context, where it then runs as a single op ({@link TfEager#call}). One call replaces dozens of eager ops,
 * each of which costs DJL's TensorFlow engine 20 to 30 microseconds of overhead, and TensorFlow's function
 * runtime fuses what it can (a MatMul with its BiasAdd and ReLU). Inputs are placeholders, in the order they
 * are declared; constants (shapes, axes, epsilons) are inputs too, so no tensor is ever built here.
 */
public final class TfGraph implements AutoCloseable {
    /** TF_DataType codes. */
    public static final int FLOAT = 1;
    public static final int INT32 = 3;
    public static final int INT64 = 9;

    /** One output of an op: an op's handle in this graph and which of its outputs. */
    public static final class Out {
        private final TF_Operation op;
        private final int index;

        Out(TF_Operation op, int index) {
            this.op = op;
            this.index = index;
        }
    }

    /** The attributes of an op being built, set by name as TensorFlow's op registry declares them. */
    public static final class Attrs {
        private final TF_OperationDescription d;

        private Attrs(TF_OperationDescription d) {
            this.d = d;
        }

        /** A {@code type} attribute: a TF_DataType code ({@link #FLOAT}, {@link #INT32}, ...). */
        public Attrs type(String name, int dtype) {
            TF_SetAttrType(d, name, dtype);
            return this;
        }

        public Attrs bool(String name, boolean value) {
            TF_SetAttrBool(d, name, (byte) (value ? 1 : 0));
            return this;
        }

        public Attrs integer(String name, long value) {
            TF_SetAttrInt(d, name, value);
            return this;
        }

        public Attrs integers(String name, long... values) {
            TF_SetAttrIntList(d, name, values, values.length);
            return this;
        }

        /** A {@code string} attribute, as its UTF-8 bytes (TensorFlow copies them). */
        public Attrs string(String name, String value) {
            byte[] b = value.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            try (BytePointer p = new BytePointer(b)) {
                TF_SetAttrString(d, name, p, b.length);
            }
            return this;
        }
    }

    private final TF_Graph graph = TF_NewGraph();
    private final TF_Status status = TF_NewStatus();
    private final List<TF_Operation> inputs = new ArrayList<>();
    private int count;

    /** The next input of the function. */
    public Out input(int dtype) {
        TF_OperationDescription d = TF_NewOperation(graph, "Placeholder", "in" + inputs.size());
        TF_SetAttrType(d, "dtype", dtype);
        TF_Operation op = finish(d);
        inputs.add(op);
        return new Out(op, 0);
    }

    /** An op with the given inputs (an {@link Out}, or a {@code List<Out>} for a list input); its output 0. */
    public Out op(String type, Object... in) {
        return build(type, d -> { }, in);
    }

    /** An op with attributes set by {@code attrs}; its output 0. */
    public Out opWith(String type, Consumer<Attrs> attrs, Object... in) {
        return build(type, attrs, in);
    }

    /** An op with attributes set by {@code attrs}; its outputs 0 to {@code outputs - 1}. */
    public Out[] opOutputs(String type, Consumer<Attrs> attrs, int outputs, Object... in) {
        Out first = build(type, attrs, in);
        Out[] out = new Out[outputs];
        for (int i = 0; i < outputs; i++) {
            out[i] = new Out(first.op, i);
        }
        return out;
    }

    private Out build(String type, Consumer<Attrs> attrs, Object[] in) {
        TF_OperationDescription d = TF_NewOperation(graph, type, type + "_" + count++);
        for (Object x : in) {
            if (x instanceof Out o) {
                TF_AddInput(d, output(o));
            } else if (x instanceof List<?> list) {
                TF_Output arr = new TF_Output(list.size());
                for (int i = 0; i < list.size(); i++) {
                    Out o = (Out) list.get(i);
                    arr.position(i).oper(o.op).index(o.index);
                }
                TF_AddInputList(d, arr.position(0), list.size());
            } else {
                throw new IllegalArgumentException("not an op output: " + x);
            }
        }
        attrs.accept(new Attrs(d));
        return new Out(finish(d), 0);
    }

    /** Makes the graph a function of its inputs returning {@code outputs}, and registers it with the engine of {@code manager}. */
    public void register(NDManager manager, String name, Out... outputs) {
        TF_Output in = new TF_Output(inputs.size());
        for (int i = 0; i < inputs.size(); i++) {
            in.position(i).oper(inputs.get(i)).index(0);
        }
        TF_Output out = new TF_Output(outputs.length);
        for (int i = 0; i < outputs.length; i++) {
            out.position(i).oper(outputs[i].op).index(outputs[i].index);
        }
        TF_Function fn = TF_GraphToFunction(graph, name, (byte) 0, -1, (TF_Operation) null, inputs.size(), in.position(0),
                outputs.length, out.position(0), (BytePointer) null, null, (String) null, status);
        check(name);
        try {
            TFE_ContextAddFunction(TfFunctions.context(manager), fn, status);
            check(name);
        } finally {
            TF_DeleteFunction(fn);
        }
    }

    private static TF_Output output(Out o) {
        return new TF_Output().oper(o.op).index(o.index);
    }

    private TF_Operation finish(TF_OperationDescription d) {
        TF_Operation op = TF_FinishOperation(d, status);
        check("an op");
        return op;
    }

    private void check(String what) {
        if (TF_GetCode(status) != 0) {
            throw new IllegalStateException("TensorFlow graph (" + what + "): " + TF_Message(status).getString());
        }
    }

    @Override
    public void close() {
        TF_DeleteGraph(graph);
        TF_DeleteStatus(status);
    }
}
