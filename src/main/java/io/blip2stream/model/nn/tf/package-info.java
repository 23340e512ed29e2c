/**
 * The model's one door into TensorFlow below DJL: graphs built op by op through TensorFlow's C API and registered
 * as functions ({@link io.blip2stream.model.nn.tf.TfGraph}), and the eager calls and in-place reads DJL does not
 * offer ({@link io.blip2stream.model.nn.tf.TfEager}, over the bridge {@code ai.djl.tensorflow.engine.TfFunctions},
 * which must sit in DJL's package). No other package of ours imports {@code org.tensorflow} or DJL's TensorFlow
 * engine; {@code ArchitectureTest} fails the build if one does.
 */
package io.blip2stream.model.nn.tf;
