/**
 * What every layer of blip2-stream uses and no layer owns: SHA-256 as hex ({@link io.blip2stream.common.Sha256})
 * and durations as milliseconds ({@link io.blip2stream.common.Millis}). It depends on nothing of ours.
 */
package io.blip2stream.common;
