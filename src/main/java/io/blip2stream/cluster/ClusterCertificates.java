package io.blip2stream.cluster;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Makes the cluster's CA and its nodes' certificates for the event bus's mutual TLS ({@link ClusterTls}), with the
 * JDK's own keytool (every JDK and JRE has it; no other tool or library): EC P-256 keys, SHA-256 signatures.
 *
 * <pre>
 * OUT/ca.pem               the CA's certificate
 * OUT/ca-key.p12           the CA's key (PKCS#12), which signs node certificates: keep it off the nodes
 * OUT/ca-key.password      its store's password
 * OUT/NODE/ca.pem          for each node, its cluster.tls_dir: the CA's certificate,
 * OUT/NODE/node.pem        its certificate (CN=NODE, serverAuth and clientAuth),
 * OUT/NODE/node-key.pem    and its key (PKCS#8 PEM, readable by its owner only)
 * </pre>
 *
 * Run again on the same folder, it keeps the CA and the nodes it has and makes the missing ones: a node added later
 * is signed by the same CA.
 */
public final class ClusterCertificates {
    /** What a run made. */
    public record Made(Path ca, boolean newCa, List<Path> made, List<Path> kept) {}

    private ClusterCertificates() {}

    public static Made make(Path out, List<String> nodes, int days) throws IOException {
        if (nodes.isEmpty()) {
            throw new IllegalArgumentException("name at least one node");
        }
        for (String n : nodes) {
            if (!n.matches("[A-Za-z0-9][A-Za-z0-9.-]{0,62}")) {
                throw new IllegalArgumentException("node name '" + n + "': letters, digits, dots and dashes, 63 at most");
            }
            if (n.equals("ca.pem") || n.startsWith("ca-key")) {
                throw new IllegalArgumentException("node name '" + n + "' is taken by the CA's files");
            }
        }
        if (days < 1 || days > 36_500) {
            throw new IllegalArgumentException("days must be between 1 and 36500");
        }
        if (!Files.exists(out) && FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            // the CA's key and every node's key lie under it: its owner's alone from the start
            Files.createDirectories(out, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        }
        Files.createDirectories(out);
        Path caStore = out.resolve("ca-key.p12");
        Path caPassword = out.resolve("ca-key.password");
        Path caPem = out.resolve(ClusterTls.CA);
        boolean newCa = !Files.exists(caStore);
        String password;
        if (newCa) {
            password = randomPassword();
            writePrivate(caPassword, password + "\n");
            keytool("-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1", "-sigalg", "SHA256withECDSA",
                    "-dname", "CN=blip2-stream cluster CA", "-ext", "bc:c", "-ext", "ku:c=keyCertSign,cRLSign",
                    "-validity", String.valueOf(Math.max(days, 3650)),
                    "-keystore", caStore.toString(), "-storetype", "PKCS12", "-storepass", password);
            owned(caStore);
            keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", caStore.toString(), "-storepass", password,
                    "-file", caPem.toString());
        } else {
            password = Files.readString(caPassword).strip();
        }
        List<Path> made = new ArrayList<>();
        List<Path> kept = new ArrayList<>();
        for (String name : nodes) {
            Path dir = out.resolve(name);
            if (Files.exists(dir.resolve(ClusterTls.CERT)) && Files.exists(dir.resolve(ClusterTls.KEY))) {
                kept.add(dir);
                continue;
            }
            node(dir, name, caStore, password, caPem, days);
            ClusterTls.load(dir); // what the service will check at start
            made.add(dir);
        }
        return new Made(caPem, newCa, made, kept);
    }

    private static void node(Path dir, String name, Path caStore, String caPassword, Path caPem, int days) throws IOException {
        Files.createDirectories(dir);
        Path work = Files.createTempDirectory("blip2-certs");
        try {
            String password = randomPassword();
            Path store = work.resolve("node.p12");
            Path csr = work.resolve("node.csr");
            keytool("-genkeypair", "-alias", "node", "-keyalg", "EC", "-groupname", "secp256r1", "-sigalg", "SHA256withECDSA",
                    "-dname", "CN=" + name, "-validity", String.valueOf(days),
                    "-keystore", store.toString(), "-storetype", "PKCS12", "-storepass", password);
            keytool("-certreq", "-alias", "node", "-keystore", store.toString(), "-storepass", password, "-file", csr.toString());
            Path cert = dir.resolve(ClusterTls.CERT);
            keytool("-gencert", "-rfc", "-alias", "ca", "-keystore", caStore.toString(), "-storepass", caPassword,
                    "-infile", csr.toString(), "-outfile", cert.toString(), "-validity", String.valueOf(days),
                    "-sigalg", "SHA256withECDSA", "-ext", "ku:c=digitalSignature", "-ext", "eku=serverAuth,clientAuth",
                    "-ext", "san=dns:" + name);
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (InputStream in = Files.newInputStream(store)) {
                ks.load(in, password.toCharArray());
            }
            byte[] pkcs8 = ks.getKey("node", password.toCharArray()).getEncoded();
            writePrivate(dir.resolve(ClusterTls.KEY), "-----BEGIN PRIVATE KEY-----\n"
                    + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(pkcs8)
                    + "\n-----END PRIVATE KEY-----\n");
            Files.copy(caPem, dir.resolve(ClusterTls.CA), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (GeneralSecurityException e) {
            throw new IOException("reading the key keytool made: " + e.getMessage(), e);
        } finally {
            try (Stream<Path> s = Files.walk(work)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** keytool of the JDK this runs on. */
    private static void keytool(String... args) throws IOException {
        Path tool = Path.of(System.getProperty("java.home"), "bin", "keytool");
        List<String> cmd = new ArrayList<>();
        cmd.add(tool.toString());
        cmd.addAll(List.of(args));
        cmd.add("-noprompt");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        try {
            byte[] output = p.getInputStream().readAllBytes();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("keytool " + args[0] + " did not finish in 120 s");
            }
            if (p.exitValue() != 0) {
                throw new IOException("keytool " + args[0] + " failed: " + new String(output, StandardCharsets.UTF_8).strip());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new IOException("interrupted", e);
        }
    }

    private static String randomPassword() {
        byte[] b = new byte[24];
        new SecureRandom().nextBytes(b);
        return Base64.getUrlEncoder().withoutPadding().encodeToString(b);
    }

    /** Written readable by its owner only, from the start (never a moment readable by others). */
    private static void writePrivate(Path file, String text) throws IOException {
        Files.deleteIfExists(file);
        if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        }
        Files.writeString(file, text);
    }

    private static void owned(Path file) throws IOException {
        if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        }
    }
}
