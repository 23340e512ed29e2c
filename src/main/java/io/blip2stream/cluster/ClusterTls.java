package io.blip2stream.cluster;

import io.vertx.core.eventbus.EventBusOptions;
import io.vertx.core.http.ClientAuth;
import io.vertx.core.net.PemKeyCertOptions;
import io.vertx.core.net.PemTrustOptions;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The clustered event bus over mutual TLS: this node presents its certificate ({@code node.pem}, {@code node-key.pem})
 * and accepts only peers whose certificate the cluster's CA ({@code ca.pem}) signed, as server and as client (client
 * authentication required). Peers are known by their CA, not by name: pods come and go with new addresses, so the
 * event bus's client checks no host name (Vert.x's clustered event bus never does).
 *
 * <p>The files are checked at start, so that a wrong file fails the start with its name rather than the first
 * handshake: each parses, the key is the certificate's, the CA signed the certificate, and it is valid now.
 * {@code ca.pem} may hold several CA certificates (a new CA beside the old while node certificates are replaced).
 */
public final class ClusterTls {
    public static final String CA = "ca.pem";
    public static final String CERT = "node.pem";
    public static final String KEY = "node-key.pem";
    /** Both ends are this service: TLS 1.3 only. */
    static final Set<String> PROTOCOLS = Set.of("TLSv1.3");

    private final Path dir;
    private final X509Certificate certificate;

    private ClusterTls(Path dir, X509Certificate certificate) {
        this.dir = dir;
        this.certificate = certificate;
    }

    /** The folder's files, checked; an {@link IllegalArgumentException} naming the file and what is wrong with it. */
    public static ClusterTls load(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("cluster.tls_dir " + dir + " is not a folder (it should hold " + CA + ", "
                    + CERT + " and " + KEY + "; `blip2-stream certs` makes them)");
        }
        List<X509Certificate> cas = certificates(dir.resolve(CA));
        List<X509Certificate> chain = certificates(dir.resolve(CERT));
        X509Certificate node = chain.get(0);
        PrivateKey key = privateKey(dir.resolve(KEY));
        if (!matches(key, node.getPublicKey())) {
            throw new IllegalArgumentException(dir.resolve(KEY) + " is not the key of the certificate in " + dir.resolve(CERT));
        }
        X509Certificate issuer = cas.stream().filter(ca -> signed(node, ca.getPublicKey())).findFirst().orElseThrow(() ->
                new IllegalArgumentException(dir.resolve(CERT) + " (" + node.getSubjectX500Principal().getName()
                        + ") is not signed by the CA in " + dir.resolve(CA)));
        // the node's certificate and its CA must be valid now; another CA of the bundle (an old one, while rotating) may not be
        Instant now = Instant.now();
        for (X509Certificate c : List.of(issuer, node)) {
            if (now.isBefore(c.getNotBefore().toInstant()) || now.isAfter(c.getNotAfter().toInstant())) {
                throw new IllegalArgumentException("the certificate " + c.getSubjectX500Principal().getName() + " in " + dir
                        + " is valid from " + c.getNotBefore().toInstant() + " to " + c.getNotAfter().toInstant() + ", not now");
            }
        }
        return new ClusterTls(dir, node);
    }

    /** The event bus's server and client both: this node's certificate, the CA's peers only, TLS 1.3. */
    public EventBusOptions applyTo(EventBusOptions options) {
        return options.setSsl(true)
                .setKeyCertOptions(new PemKeyCertOptions().setCertPath(dir.resolve(CERT).toString()).setKeyPath(dir.resolve(KEY).toString()))
                .setTrustOptions(new PemTrustOptions().addCertPath(dir.resolve(CA).toString()))
                // the event bus's default is to trust every server (EventBusOptions.DEFAULT_TRUST_ALL): as a client too,
                // a node accepts only peers of the cluster's CA
                .setTrustAll(false)
                .setClientAuth(ClientAuth.REQUIRED)
                .setEnabledSecureTransportProtocols(PROTOCOLS)
                .setSslHandshakeTimeout(10).setSslHandshakeTimeoutUnit(java.util.concurrent.TimeUnit.SECONDS);
    }

    /** Who this node is to its peers (the certificate's subject), and until when. */
    public String describe() {
        return certificate.getSubjectX500Principal().getName() + " (CA " + certificate.getIssuerX500Principal().getName()
                + ", valid until " + certificate.getNotAfter().toInstant() + ")";
    }

    /** How long until this node's certificate expires. */
    public Duration remaining() {
        return Duration.between(Instant.now(), certificate.getNotAfter().toInstant());
    }

    static List<X509Certificate> certificates(Path file) {
        byte[] pem = read(file);
        try {
            List<X509Certificate> out = new ArrayList<>();
            for (var c : CertificateFactory.getInstance("X.509").generateCertificates(new ByteArrayInputStream(pem))) {
                out.add((X509Certificate) c);
            }
            if (out.isEmpty()) {
                throw new IllegalArgumentException(file + " holds no certificate (PEM, -----BEGIN CERTIFICATE-----)");
            }
            return out;
        } catch (GeneralSecurityException e) {
            throw new IllegalArgumentException(file + " is not a PEM certificate: " + e.getMessage());
        }
    }

    private static final Pattern PKCS8 = Pattern.compile("-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\\s]+)-----END PRIVATE KEY-----");

    static PrivateKey privateKey(Path file) {
        String text = new String(read(file), StandardCharsets.US_ASCII);
        Matcher m = PKCS8.matcher(text);
        if (!m.find()) {
            throw new IllegalArgumentException(file + " holds no PKCS#8 private key (PEM, -----BEGIN PRIVATE KEY-----; "
                    + "convert another form with `openssl pkcs8 -topk8 -nocrypt`)");
        }
        byte[] der = Base64.getMimeDecoder().decode(m.group(1));
        for (String algorithm : List.of("EC", "RSA")) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (GeneralSecurityException e) {
                // the other algorithm
            }
        }
        throw new IllegalArgumentException(file + " holds a private key that is neither EC nor RSA");
    }

    private static boolean matches(PrivateKey key, PublicKey pub) {
        try {
            String alg = key.getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
            byte[] probe = "blip2-stream".getBytes(StandardCharsets.US_ASCII);
            Signature s = Signature.getInstance(alg);
            s.initSign(key);
            s.update(probe);
            byte[] sig = s.sign();
            Signature v = Signature.getInstance(alg);
            v.initVerify(pub);
            v.update(probe);
            return v.verify(sig);
        } catch (GeneralSecurityException e) {
            return false;
        }
    }

    private static boolean signed(X509Certificate c, PublicKey ca) {
        try {
            c.verify(ca);
            return true;
        } catch (GeneralSecurityException e) {
            return false;
        }
    }

    private static byte[] read(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read " + file + " (" + e.getClass().getSimpleName() + ")");
        }
    }
}
