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
 * Run again on the same folder, it keeps the CA, and the nodes whose certificate that CA signed with more than 30 days
 * left; it makes the others (a node added later, a certificate near its end) with the same CA. Passwords go to
 * keytool through its environment, never its command line.
 */
public final class ClusterCertificates {
    /** What a run made. */
    public record Made(Path ca, boolean newCa, List<Path> made, List<Path> kept) {}

    private ClusterCertificates() {}

    /** A node certificate with less than this left is made again. */
    static final java.time.Duration RENEW_BEFORE = java.time.Duration.ofDays(30);

    public static Made make(Path out, List<String> nodes, int days) throws IOException {
        return make(out, nodes, days, false);
    }

    /**
     * Makes the CA if {@code out} has none, and each node's certificate unless it has one that the current CA signed
     * with more than {@link #RENEW_BEFORE} left ({@code renew}: made again in any case).
     */
    public static Made make(Path out, List<String> nodes, int days, boolean renew) throws IOException {
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
            if (Files.exists(caPem)) {
                throw new IllegalArgumentException(out + " has a CA certificate (ca.pem) but not its key (ca-key.p12): the nodes it "
                        + "signed could not be told from a new CA's; move " + out + " away, or put the key back");
            }
            password = randomPassword();
            // made in a folder of its own (0700) and moved into place: never readable by others, whatever out's mode
            Path work = Files.createTempDirectory("blip2-ca");
            try {
                Path store = work.resolve("ca-key.p12");
                keytool(password, "-genkeypair", "-alias", "ca", "-keyalg", "EC", "-groupname", "secp256r1", "-sigalg", "SHA256withECDSA",
                        "-dname", "CN=blip2-stream cluster CA", "-ext", "bc:c", "-ext", "ku:c=keyCertSign,cRLSign",
                        "-validity", String.valueOf(Math.max(days, 3650)),
                        "-keystore", store.toString(), "-storetype", "PKCS12");
                owned(store);
                keytool(password, "-exportcert", "-rfc", "-alias", "ca", "-keystore", store.toString(), "-file", caPem.toString());
                writePrivate(caPassword, password + "\n");
                Files.move(store, caStore);
            } finally {
                delete(work);
            }
        } else {
            password = Files.readString(caPassword).strip();
        }
        List<Path> made = new ArrayList<>();
        List<Path> kept = new ArrayList<>();
        for (String name : nodes) {
            Path dir = out.resolve(name);
            if (!renew && current(dir, caPem)) {
                kept.add(dir);
                continue;
            }
            node(dir, name, caStore, password, caPem, days);
            ClusterTls.load(dir); // what the service will check at start
            made.add(dir);
        }
        return new Made(caPem, newCa, made, kept);
    }

    /** Whether {@code dir} holds a node certificate of the CA in {@code caPem} with more than {@link #RENEW_BEFORE} left. */
    private static boolean current(Path dir, Path caPem) {
        if (!Files.exists(dir.resolve(ClusterTls.CERT)) || !Files.exists(dir.resolve(ClusterTls.KEY))) {
            return false;
        }
        try {
            ClusterTls tls = ClusterTls.load(dir);
            return java.util.Arrays.equals(Files.readAllBytes(dir.resolve(ClusterTls.CA)), Files.readAllBytes(caPem))
                    && tls.remaining().compareTo(RENEW_BEFORE) > 0;
        } catch (IllegalArgumentException | IOException e) {
            return false; // damaged, expired, another CA's: made again
        }
    }

    private static void node(Path dir, String name, Path caStore, String caPassword, Path caPem, int days) throws IOException {
        Files.createDirectories(dir);
        Path work = Files.createTempDirectory("blip2-certs");
        try {
            String password = randomPassword();
            Path store = work.resolve("node.p12");
            Path csr = work.resolve("node.csr");
            keytool(password, "-genkeypair", "-alias", "node", "-keyalg", "EC", "-groupname", "secp256r1", "-sigalg", "SHA256withECDSA",
                    "-dname", "CN=" + name, "-validity", String.valueOf(days),
                    "-keystore", store.toString(), "-storetype", "PKCS12");
            keytool(password, "-certreq", "-alias", "node", "-keystore", store.toString(), "-file", csr.toString());
            Path cert = work.resolve(ClusterTls.CERT);
            keytool(caPassword, "-gencert", "-rfc", "-alias", "ca", "-keystore", caStore.toString(),
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
            Files.copy(cert, dir.resolve(ClusterTls.CERT), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            Files.copy(caPem, dir.resolve(ClusterTls.CA), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (GeneralSecurityException e) {
            throw new IOException("reading the key keytool made: " + e.getMessage(), e);
        } finally {
            delete(work);
        }
    }

    private static void delete(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    /**
     * keytool of the JDK this runs on, the store's password in its environment ({@code -storepass:env}), not on its
     * command line, which other users of the machine can read.
     */
    private static void keytool(String storePassword, String... args) throws IOException {
        Path tool = Path.of(System.getProperty("java.home"), "bin", "keytool");
        List<String> cmd = new ArrayList<>();
        cmd.add(tool.toString());
        cmd.addAll(List.of(args));
        cmd.addAll(List.of("-storepass:env", "BLIP2_KEYTOOL_STOREPASS", "-noprompt"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("BLIP2_KEYTOOL_STOREPASS", storePassword);
        Process p = pb.start();
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
