package io.blip2stream.cluster;

import io.blip2stream.TestCerts;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, items 1 and 2, without sockets: the {@code certs} command's files (keys readable by their owner only,
 * nodes added later signed by the same CA), the checks a node makes of its tls_dir at start (each wrong file named),
 * the refusal of several nodes without certificates, and the address a node announces apart from the one it binds.
 */
class ClusterTlsTest {
    @TempDir
    Path tmp;

    @Test
    void theCertsCommandMakesWhatTheNodesCheck() throws Exception {
        Path out = tmp.resolve("certs");
        ClusterCertificates.Made first = ClusterCertificates.make(out, List.of("a", "b"), 30);
        assertTrue(first.newCa());
        assertEquals(2, first.made().size());
        for (String n : List.of("a", "b")) {
            ClusterTls tls = ClusterTls.load(out.resolve(n));
            assertTrue(tls.describe().contains("CN=" + n), tls.describe());
            assertTrue(tls.remaining().toDays() >= 29 && tls.remaining().toDays() <= 30, tls.remaining().toString());
            assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE),
                    Files.getPosixFilePermissions(out.resolve(n).resolve(ClusterTls.KEY)), "a key is its owner's alone");
        }
        assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_EXECUTE),
                Files.getPosixFilePermissions(out), "the folder with the CA's key too");
        byte[] ca = Files.readAllBytes(out.resolve("ca.pem"));
        byte[] certA = Files.readAllBytes(out.resolve("a").resolve(ClusterTls.CERT));

        // again, with a node more: the CA and a, b kept; c signed by the same CA
        ClusterCertificates.Made second = ClusterCertificates.make(out, List.of("a", "b", "c"), 30);
        assertFalse(second.newCa());
        assertEquals(List.of(out.resolve("c")), second.made());
        assertEquals(2, second.kept().size());
        assertTrue(java.util.Arrays.equals(ca, Files.readAllBytes(out.resolve("ca.pem"))));
        assertTrue(java.util.Arrays.equals(certA, Files.readAllBytes(out.resolve("a").resolve(ClusterTls.CERT))));
        ClusterTls.load(out.resolve("c"));

        for (String bad : List.of("", "../x", "a/b", "ca-key.p12", "-a", "x".repeat(64))) {
            assertThrows(IllegalArgumentException.class, () -> ClusterCertificates.make(out, List.of(bad), 30), bad);
        }
        assertThrows(IllegalArgumentException.class, () -> ClusterCertificates.make(out, List.of("d"), 0));
    }

    @Test
    void aWrongFileIsNamedAtStart() throws Exception {
        Path good = TestCerts.node(1);
        Path rogue = TestCerts.rogue();
        // the node's certificate with another node's key
        Path mixed = copy(good, "mixed");
        Files.copy(TestCerts.node(2).resolve(ClusterTls.KEY), mixed.resolve(ClusterTls.KEY), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertMessage(mixed, "is not the key of the certificate");
        // a certificate another CA signed, with this cluster's CA
        Path foreign = copy(rogue, "foreign");
        Files.copy(good.resolve(ClusterTls.CA), foreign.resolve(ClusterTls.CA), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertMessage(foreign, "is not signed by the CA");
        // files missing, or not PEM
        Path missing = copy(good, "missing");
        Files.delete(missing.resolve(ClusterTls.KEY));
        assertMessage(missing, "cannot read");
        Path garbage = copy(good, "garbage");
        Files.writeString(garbage.resolve(ClusterTls.CERT), "not a certificate");
        assertMessage(garbage, ClusterTls.CERT);
        Path rsa = copy(good, "rsa-key");
        Files.writeString(rsa.resolve(ClusterTls.KEY), "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n");
        assertMessage(rsa, "PKCS#8");
        assertMessage(tmp.resolve("nowhere"), "is not a folder");
        // a CA bundle with the old CA and the new: both nodes' certificates accepted (CA rotation)
        Path bundle = copy(good, "bundle");
        Files.writeString(bundle.resolve(ClusterTls.CA), Files.readString(rogue.resolve(ClusterTls.CA)) + Files.readString(good.resolve(ClusterTls.CA)));
        ClusterTls.load(bundle);
    }

    @Test
    void severalNodesNeedCertificatesAndAnnounceTheirPublicHost() {
        ServiceConfig several = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_MEMBERS", "127.0.0.1:5702"), Map.of());
        var e = assertThrows(IllegalArgumentException.class, () -> ClusterBootstrap.tls(several.cluster()));
        assertTrue(e.getMessage().contains("BLIP2_CLUSTER_TLS_DIR") && e.getMessage().contains("blip2-stream certs"), e.getMessage());
        ServiceConfig k8s = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_KUBERNETES", "true"), Map.of());
        assertThrows(IllegalArgumentException.class, () -> ClusterBootstrap.tls(k8s.cluster()));
        ServiceConfig insecure = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_MEMBERS", "127.0.0.1:5702", "BLIP2_CLUSTER_INSECURE", "true"), Map.of());
        assertEquals(Optional.empty(), ClusterBootstrap.tls(insecure.cluster()));
        ServiceConfig alone = ConfigLoader.load(null, Map.of(), Map.of());
        assertEquals(Optional.empty(), ClusterBootstrap.tls(alone.cluster()), "a node alone needs none");
        assertFalse(ClusterBootstrap.eventBusOptions(alone, Optional.empty()).isSsl());

        ServiceConfig withTls = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_MEMBERS", "127.0.0.1:5702",
                "BLIP2_CLUSTER_TLS_DIR", TestCerts.node(1).toString()), Map.of());
        var bus = ClusterBootstrap.eventBusOptions(withTls, ClusterBootstrap.tls(withTls.cluster()));
        assertTrue(bus.isSsl());
        assertEquals(io.vertx.core.http.ClientAuth.REQUIRED, bus.getClientAuth(), "peers must present a certificate");
        assertEquals(Set.of("TLSv1.3"), bus.getEnabledSecureTransportProtocols());

        // binds cluster.host, announces cluster.public_host
        ServiceConfig natted = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", "10.0.0.5", "BLIP2_CLUSTER_PUBLIC_HOST", "203.0.113.7",
                "BLIP2_CLUSTER_PORT", "5801"), Map.of());
        var hz = ClusterBootstrap.hazelcastConfig(natted);
        assertEquals("203.0.113.7:5801", hz.getNetworkConfig().getPublicAddress());
        assertEquals(List.of("10.0.0.5"), List.copyOf(hz.getNetworkConfig().getInterfaces().getInterfaces()));
        assertEquals("false", hz.getProperty("hazelcast.socket.bind.any"));
        var nattedBus = ClusterBootstrap.eventBusOptions(natted, Optional.empty());
        assertEquals("10.0.0.5", nattedBus.getHost());
        assertEquals("203.0.113.7", nattedBus.getClusterPublicHost());
        // without a public host, the bound address is the announced one
        var plain = ClusterBootstrap.hazelcastConfig(ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", "10.0.0.5"), Map.of()));
        assertEquals(null, plain.getNetworkConfig().getPublicAddress());
        assertEquals("10.0.0.5", ClusterBootstrap.eventBusOptions(ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", "10.0.0.5"), Map.of()),
                Optional.empty()).getClusterPublicHost());
    }

    private static void assertMessage(Path dir, String part) {
        var e = assertThrows(IllegalArgumentException.class, () -> ClusterTls.load(dir));
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }

    private Path copy(Path from, String name) throws Exception {
        Path to = Files.createDirectories(tmp.resolve(name));
        for (String f : List.of(ClusterTls.CA, ClusterTls.CERT, ClusterTls.KEY)) {
            Files.copy(from.resolve(f), to.resolve(f));
        }
        return to;
    }
}
