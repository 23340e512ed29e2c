package io.blip2stream.service.bus;

/**
 * A generated token of a request: its index among the new tokens, its id, and the new piece of text.
 * {@code toKafka}: the request asked for token records on the tokens topic.
 */
public record TokenEvent(String id, int index, int tokenId, String text, boolean toKafka) {}
