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
        ClusterCertificates.Made first = ClusterCertificates.make(out, List.of("a", "b"), 90);
        assertTrue(first.newCa());
        assertEquals(2, first.made().size());
        for (String n : List.of("a", "b")) {
            ClusterTls tls = ClusterTls.load(out.resolve(n));
            assertTrue(tls.describe().contains("CN=" + n), tls.describe());
            assertTrue(tls.remaining().toDays() >= 89 && tls.remaining().toDays() <= 90, tls.remaining().toString());
            assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE),
                    Files.getPosixFilePermissions(out.resolve(n).resolve(ClusterTls.KEY)), "a key is its owner's alone");
        }
        assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_EXECUTE),
                Files.getPosixFilePermissions(out), "the folder with the CA's key too");
        for (String f : List.of("ca-key.p12", "ca-key.password")) {
            assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE), Files.getPosixFilePermissions(out.resolve(f)), f);
        }
        byte[] ca = Files.readAllBytes(out.resolve("ca.pem"));
        byte[] certA = Files.readAllBytes(out.resolve("a").resolve(ClusterTls.CERT));

        // again, with a node more: the CA and a, b kept; c signed by the same CA
        ClusterCertificates.Made second = ClusterCertificates.make(out, List.of("a", "b", "c"), 90);
        assertFalse(second.newCa());
        assertEquals(List.of(out.resolve("c")), second.made());
        assertEquals(2, second.kept().size());
        assertTrue(java.util.Arrays.equals(ca, Files.readAllBytes(out.resolve("ca.pem"))));
        assertTrue(java.util.Arrays.equals(certA, Files.readAllBytes(out.resolve("a").resolve(ClusterTls.CERT))));
        ClusterTls.load(out.resolve("c"));

        // --renew signs again; a certificate with less than 30 days left is signed again without it
        ClusterCertificates.Made renewed = ClusterCertificates.make(out, List.of("a"), 90, true);
        assertEquals(List.of(out.resolve("a")), renewed.made());
        assertFalse(java.util.Arrays.equals(certA, Files.readAllBytes(out.resolve("a").resolve(ClusterTls.CERT))));
        ClusterCertificates.Made shortLived = ClusterCertificates.make(out, List.of("short"), 10);
        assertEquals(1, shortLived.made().size());
        assertEquals(List.of(out.resolve("short")), ClusterCertificates.make(out, List.of("short"), 400).made(),
                "10 days left: made again");
        assertEquals(List.of(out.resolve("short")), ClusterCertificates.make(out, List.of("short"), 400).kept(), "400 days left: kept");
        // a CA certificate without its key: refused rather than a second CA beside the nodes of the first
        Path lost = tmp.resolve("lost");
        ClusterCertificates.make(lost, List.of("a"), 30);
        Files.delete(lost.resolve("ca-key.p12"));
        var e = assertThrows(IllegalArgumentException.class, () -> ClusterCertificates.make(lost, List.of("a", "b"), 30));
        assertTrue(e.getMessage().contains("ca-key.p12"), e.getMessage());

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
        ServiceConfig k8s = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_KUBERNETES", "true", "BLIP2_CLUSTER_HOST", "10.1.2.3"), Map.of());
        var k8sRefused = assertThrows(IllegalArgumentException.class, () -> ClusterBootstrap.tls(k8s.cluster()));
        assertTrue(k8sRefused.getMessage().contains("BLIP2_CLUSTER_TLS_DIR"), k8sRefused.getMessage());
        // a node alone on an address other machines reach needs them too (a foreign member could join it)
        ServiceConfig exposed = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", "10.1.2.3"), Map.of());
        var exposedRefused = assertThrows(IllegalArgumentException.class, () -> ClusterBootstrap.tls(exposed.cluster()));
        assertTrue(exposedRefused.getMessage().contains("other machines reach"), exposedRefused.getMessage());
        // in Kubernetes the pod's IP, and never loopback
        ServiceConfig k8sDefault = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_KUBERNETES", "true"), Map.of());
        assertEquals("10.9.8.7", ClusterBootstrap.bindHost(k8sDefault.cluster(), Map.of("POD_IP", "10.9.8.7")));
        var loop = assertThrows(IllegalArgumentException.class, () -> ClusterBootstrap.bindHost(k8sDefault.cluster(), Map.of()));
        assertTrue(loop.getMessage().contains("POD_IP"), loop.getMessage());
        assertEquals("127.0.0.1", ClusterBootstrap.bindHost(alone(), Map.of("POD_IP", "10.9.8.7")), "POD_IP only in Kubernetes");
        for (String bad : List.of("0.0.0.0", "fd00::5", " ")) {
            assertThrows(IllegalArgumentException.class, () -> ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", bad), Map.of()), bad);
        }
        ServiceConfig insecure = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_MEMBERS", "127.0.0.1:5702", "BLIP2_CLUSTER_INSECURE", "true"), Map.of());
        assertEquals(Optional.empty(), ClusterBootstrap.tls(insecure.cluster()));
        ServiceConfig alone = ConfigLoader.load(null, Map.of(), Map.of());
        assertEquals(Optional.empty(), ClusterBootstrap.tls(alone.cluster()), "a node alone needs none");
        assertFalse(ClusterBootstrap.eventBusOptions(alone.cluster(), Optional.empty()).isSsl());

        ServiceConfig withTls = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_MEMBERS", "127.0.0.1:5702",
                "BLIP2_CLUSTER_TLS_DIR", TestCerts.node(1).toString()), Map.of());
        var bus = ClusterBootstrap.eventBusOptions(withTls.cluster(), ClusterBootstrap.tls(withTls.cluster()));
        assertTrue(bus.isSsl());
        assertEquals(io.vertx.core.http.ClientAuth.REQUIRED, bus.getClientAuth(), "peers must present a certificate");
        assertEquals(Set.of("TLSv1.3"), bus.getEnabledSecureTransportProtocols());
        assertFalse(bus.isTrustAll(), "peers are checked against the CA, as servers too");
        var trust = (io.vertx.core.net.PemTrustOptions) bus.getTrustOptions();
        assertEquals(List.of(TestCerts.node(1).resolve(ClusterTls.CA).toString()), trust.getCertPaths());

        // binds cluster.host, announces cluster.public_host
        ServiceConfig natted = ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", "10.0.0.5", "BLIP2_CLUSTER_PUBLIC_HOST", "203.0.113.7",
                "BLIP2_CLUSTER_PORT", "5801"), Map.of());
        var hz = ClusterBootstrap.hazelcastConfig(natted.cluster());
        assertEquals("203.0.113.7:5801", hz.getNetworkConfig().getPublicAddress());
        assertEquals(List.of("10.0.0.5"), List.copyOf(hz.getNetworkConfig().getInterfaces().getInterfaces()));
        assertEquals("false", hz.getProperty("hazelcast.socket.bind.any"));
        var nattedBus = ClusterBootstrap.eventBusOptions(natted.cluster(), Optional.empty());
        assertEquals("10.0.0.5", nattedBus.getHost());
        assertEquals("203.0.113.7", nattedBus.getClusterPublicHost());
        // without a public host, the bound address is the announced one
        var plain = ClusterBootstrap.hazelcastConfig(ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", "10.0.0.5"), Map.of()).cluster());
        assertEquals(null, plain.getNetworkConfig().getPublicAddress());
        assertEquals("10.0.0.5", ClusterBootstrap.eventBusOptions(ConfigLoader.load(null, Map.of("BLIP2_CLUSTER_HOST", "10.0.0.5"), Map.of()).cluster(),
                Optional.empty()).getClusterPublicHost());
    }

    private static ClusterSettings alone() {
        return ConfigLoader.load(null, Map.of(), Map.of()).cluster();
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
