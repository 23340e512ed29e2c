package io.blip2stream.service.image;

import io.blip2stream.engine.RequestError;
import io.blip2stream.service.protocol.ClientText;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Images by {@code file:} URL from a shared volume: read under {@code images.file_root} only. The path is checked
 * under the root as written (with {@code ..} resolved) before the file system is asked anything, then again with
 * its links resolved, so no link leads out of the root; regular files only, at most the image size limit.
 */
final class ImageFiles {
    private final String fileRoot;
    private final long maxBytes;

    ImageFiles(String fileRoot, long maxBytes) {
        this.fileRoot = fileRoot;
        this.maxBytes = maxBytes;
    }

    /** A file: URL's bytes (a blocking read). */
    byte[] read(URI uri) {
        if (fileRoot.isBlank()) {
            throw ImageFetcher.notAllowed("file: URLs are off (images.file_root is not set)");
        }
        if (uri.getRawAuthority() != null && !uri.getRawAuthority().isEmpty() && !uri.getRawAuthority().equalsIgnoreCase("localhost")) {
            throw ImageFetcher.notAllowed("file: URLs name a path on this node (file:///path), not on a host");
        }
        if (uri.getPath() == null || !uri.getPath().startsWith("/")) {
            throw new RequestError(RequestError.INVALID_IMAGE, "image_url: a file: URL needs an absolute path (file:///path)");
        }
        Path root;
        try {
            root = Path.of(fileRoot).toRealPath();
        } catch (IOException e) {
            throw new RequestError(RequestError.IMAGE_FETCH_FAILED, "images.file_root (" + fileRoot + ") cannot be read: "
                    + e.getClass().getSimpleName());
        }
        String shown = "file://" + ClientText.quote(uri.getPath());
        // under the root as written (.. resolved), before the file system is asked anything: what lies outside
        // the root is refused alike, whether it exists or not
        if (!Path.of(uri.getPath()).normalize().startsWith(root) && !Path.of(uri.getPath()).normalize().startsWith(Path.of(fileRoot).toAbsolutePath().normalize())) {
            throw ImageFetcher.notAllowed(shown + " is outside images.file_root");
        }
        Path real;
        try {
            real = Path.of(uri.getPath()).toRealPath();
        } catch (NoSuchFileException e) {
            throw new RequestError(RequestError.IMAGE_FETCH_FAILED, "no file " + shown);
        } catch (IOException | RuntimeException e) {
            throw new RequestError(RequestError.IMAGE_FETCH_FAILED, shown + " cannot be read: " + e.getClass().getSimpleName());
        }
        if (!real.startsWith(root)) {
            throw ImageFetcher.notAllowed(shown + " is outside images.file_root");
        }
        if (!Files.isRegularFile(real)) {
            throw ImageFetcher.notAllowed(shown + " is not a regular file");
        }
        try (InputStream in = Files.newInputStream(real)) {
            byte[] bytes = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, maxBytes + 1));
            if (bytes.length > maxBytes) {
                throw new RequestError(RequestError.IMAGE_TOO_LARGE, "the image at " + shown + " is larger than the limit of "
                        + maxBytes + " bytes (limits.max_image_bytes)");
            }
            return bytes;
        } catch (IOException e) {
            throw new RequestError(RequestError.IMAGE_FETCH_FAILED, shown + " cannot be read: " + e.getClass().getSimpleName());
        }
    }
}
