package io.blip2stream.model.image;

/** The bytes are not an image this service can read; the message says why, for the client. */
public class ImageDecodeException extends IllegalArgumentException {
    public ImageDecodeException(String message) {
        super(message);
    }

    public ImageDecodeException(String message, Throwable cause) {
        super(message, cause);
    }
}
