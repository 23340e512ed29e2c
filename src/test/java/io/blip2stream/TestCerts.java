package io.blip2stream;

import io.blip2stream.cluster.ClusterCertificates;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The tests' cluster certificates, made by the {@code certs} command's code (the JDK's keytool) under target/, once:
 * a later call keeps what is there and makes only the nodes missing. {@link #node} is signed by the cluster's CA;
 * {@link #rogue} by a CA of its own, as a stranger would make one.
 */
public final class TestCerts {
    private static final Path ROOT = Path.of("target", "test-certs");

    private TestCerts() {}

    /** The cluster.tls_dir of node {@code i} (1-based) of the tests' cluster CA. */
    public static synchronized Path node(int i) {
        List<String> names = new ArrayList<>();
        for (int k = 1; k <= Math.max(i, 3); k++) {
            names.add("node-" + k);
        }
        return make(ROOT.resolve("cluster"), names).resolve("node-" + i).toAbsolutePath();
    }

    /** A node certificate of another CA: a well-formed folder that the cluster must not accept. */
    public static synchronized Path rogue() {
        return make(ROOT.resolve("rogue"), List.of("node-1")).resolve("node-1").toAbsolutePath();
    }

    private static Path make(Path dir, List<String> names) {
        try {
            ClusterCertificates.make(dir, names, 825);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
