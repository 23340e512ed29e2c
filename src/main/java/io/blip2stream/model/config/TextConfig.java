package io.blip2stream.model.config;

/** The language model's {@code text_config}: one record per model family. */
public interface TextConfig {
    String modelType();

    int vocabSize();

    int bosTokenId();

    int eosTokenId();

    int padTokenId();

    boolean isEncoderDecoder();
}
