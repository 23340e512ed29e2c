package io.blip2stream.engine;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where the default models are: the trained scene models shipped in {@code models/}, found next to the working
 * folder or next to the jar (and the folders above it), so that the command line and {@code serve} work from a
 * fresh clone with no options.
 */
public final class ModelLocations {
    public static final String DEFAULT_GENERATION = "models/blip2-scenes-opt";
    public static final String DEFAULT_RETRIEVAL = "models/blip2-scenes-itm";

    private ModelLocations() {}

    public static Path find(String relative) {
        Path here = Path.of(relative);
        if (Files.isDirectory(here)) {
            return here;
        }
        try {
            Path jar = Path.of(ModelLocations.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            for (Path p = jar.getParent(); p != null; p = p.getParent()) {
                if (Files.isDirectory(p.resolve(relative))) {
                    return p.resolve(relative);
                }
            }
        } catch (Exception e) {
            // fall through: report the relative path as missing
        }
        return here;
    }
}
