package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.SecurityContext;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyIngressRule;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPeer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, item 5: each overlay as {@code kubectl kustomize} renders it (what {@code kubectl apply -k} sends), read
 * back into the Kubernetes model. The NetworkPolicy selects the service's pods and admits Hazelcast and the event bus
 * only from them, and HTTP only from listed sources; the pods pass the restricted Pod Security Standard (and have a
 * read-only root filesystem, with writable volumes where the service writes); the cluster key and certificates come
 * from Secrets, mounted where the settings point, and no ConfigMap holds key material; the event bus port the
 * rendered configuration sets is the container's and the policy's.
 */
class KustomizeTest {
    @TempDir
    Path tmp;

    /** kubectl's embedded kustomize (or a standalone kustomize) on the PATH. */
    static List<String> kustomize(Path dir) {
        for (String p : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (Files.isExecutable(Path.of(p, "kubectl"))) {
                return List.of(Path.of(p, "kubectl").toString(), "kustomize", dir.toString());
            }
            if (Files.isExecutable(Path.of(p, "kustomize"))) {
                return List.of(Path.of(p, "kustomize").toString(), "build", dir.toString());
            }
        }
        throw new AssertionError("this test renders the overlays with `kubectl kustomize` (or `kustomize build`): neither is on the PATH");
    }

    static List<HasMetadata> render(Path overlay, Path tmp) throws Exception {
        Path out = tmp.resolve(overlay.getFileName() + ".yaml");
        Process p = new ProcessBuilder(kustomize(overlay)).redirectOutput(out.toFile()).redirectErrorStream(false).start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "kustomize finishes");
        assertEquals(0, p.exitValue(), "kustomize " + overlay + ": " + err);
        return ManifestTest.load(out);
    }

    @Test
    void eachOverlayRendersThePolicySecretsAndRestrictedPods() throws Exception {
        for (String overlay : List.of("cpu", "gpu")) {
            List<HasMetadata> all = render(ManifestTest.K8S.resolve("overlays").resolve(overlay), tmp);
            String where = "overlay " + overlay + ": ";
            Deployment d = ManifestTest.one(all, Deployment.class, "blip2-stream");
            PodSpec pod = d.getSpec().getTemplate().getSpec();
            Map<String, String> podLabels = d.getSpec().getTemplate().getMetadata().getLabels();
            Container c = pod.getContainers().get(0);
            Map<String, Integer> ports = new HashMap<>();
            c.getPorts().forEach(p -> ports.put(p.getName(), p.getContainerPort()));

            // the rendered configuration's event bus port is the container's
            ConfigMap config = all.stream().filter(ConfigMap.class::isInstance).map(ConfigMap.class::cast)
                    .filter(m -> m.getMetadata().getName().startsWith("blip2-config")).findFirst().orElseThrow();
            Path file = Files.writeString(tmp.resolve(overlay + "-config.yaml"), config.getData().get("config.yaml"));
            ServiceConfig s = ConfigLoader.load(file, Map.of(), Map.of());
            assertEquals(s.cluster().eventBusPort(), ports.get("eventbus"), where + "the event bus's fixed port is a container port");
            assertEquals(s.cluster().port(), ports.get("hazelcast"));

            // the NetworkPolicy
            NetworkPolicy np = ManifestTest.one(all, NetworkPolicy.class, "blip2-stream");
            assertTrue(podLabels.entrySet().containsAll(np.getSpec().getPodSelector().getMatchLabels().entrySet()),
                    where + "the policy selects the service's pods");
            assertTrue(np.getSpec().getPolicyTypes().contains("Ingress"));
            Set<String> clusterPorts = Set.of("hazelcast", "eventbus");
            Set<String> admitted = new HashSet<>();
            for (NetworkPolicyIngressRule rule : np.getSpec().getIngress()) {
                assertFalse(rule.getFrom() == null || rule.getFrom().isEmpty(), where + "no rule admits everyone");
                assertFalse(rule.getPorts() == null || rule.getPorts().isEmpty(), where + "no rule admits every port");
                List<String> rulePorts = new ArrayList<>();
                rule.getPorts().forEach(p -> rulePorts.add(p.getPort().getStrVal()));
                admitted.addAll(rulePorts);
                rulePorts.forEach(p -> assertTrue(ports.containsKey(p), where + "the policy names a container port: " + p));
                if (rulePorts.stream().anyMatch(clusterPorts::contains)) {
                    assertTrue(clusterPorts.containsAll(rulePorts), where + "the cluster ports have a rule of their own");
                    for (NetworkPolicyPeer peer : rule.getFrom()) {
                        assertTrue(peer.getNamespaceSelector() == null && peer.getIpBlock() == null,
                                where + "the cluster ports admit no other namespace or address");
                        assertNotNull(peer.getPodSelector());
                        var selector = peer.getPodSelector().getMatchLabels();
                        assertTrue(selector != null && podLabels.entrySet().containsAll(selector.entrySet())
                                && selector.get("app.kubernetes.io/name").equals("blip2-stream"), where + "only the service's own pods: " + selector);
                    }
                } else {
                    for (NetworkPolicyPeer peer : rule.getFrom()) {
                        assertTrue(peer.getIpBlock() == null || !peer.getIpBlock().getCidr().endsWith("/0"), where + "HTTP not from anywhere");
                        assertFalse(peer.getPodSelector() != null && peer.getNamespaceSelector() != null
                                && peer.getNamespaceSelector().getMatchLabels() == null && peer.getNamespaceSelector().getMatchExpressions() == null,
                                where + "not every namespace");
                    }
                }
            }
            assertEquals(Set.of("http", "hazelcast", "eventbus"), admitted, where + "the policy covers each port the pods serve");

            // the restricted Pod Security Standard, and a read-only root filesystem
            assertRestricted(pod, where);
            if (overlay.equals("gpu")) {
                // its image extracts the natives at start (deploy/Dockerfile.gpu has no GPU to run them at build time)
                String gpuImage = Files.readString(Path.of("deploy/Dockerfile.gpu"));
                assertTrue(gpuImage.contains("cachedir=/app/.javacpp") && gpuImage.contains("DJL_CACHE_DIR=/app/.djl"));
                for (String cache : List.of("/app/.javacpp", "/app/.djl")) {
                    assertTrue(c.getVolumeMounts().stream().anyMatch(m -> m.getMountPath().equals(cache) && !Boolean.TRUE.equals(m.getReadOnly())
                                    && pod.getVolumes().stream().anyMatch(v -> v.getName().equals(m.getName()) && v.getEmptyDir() != null)),
                            where + "the natives' cache " + cache + " on a writable emptyDir");
                }
                assertTrue(c.getEnv().stream().noneMatch(e -> e.getName().equals("DJL_CACHE_DIR")), where + "the image's own DJL_CACHE_DIR, on its volume");
            }

            // Secrets: the key and the certificates mounted from Secrets, where the settings point; nothing secret in ConfigMaps
            Map<String, String> env = new HashMap<>();
            for (EnvVar e : c.getEnv()) {
                env.put(e.getName(), e.getValue());
            }
            Map<String, String> secretOf = new HashMap<>();
            for (Volume v : pod.getVolumes()) {
                if (v.getSecret() != null) {
                    secretOf.put(v.getName(), v.getSecret().getSecretName());
                }
            }
            Map<String, String> mountedSecret = new HashMap<>(); // mount path -> secret name
            for (VolumeMount m : c.getVolumeMounts()) {
                if (secretOf.containsKey(m.getName())) {
                    assertTrue(Boolean.TRUE.equals(m.getReadOnly()), where + m.getMountPath() + " read-only");
                    mountedSecret.put(m.getMountPath(), secretOf.get(m.getName()));
                }
            }
            assertEquals("blip2-cluster-key", secretIn(mountedSecret, env.get("BLIP2_CLUSTER_KEY_FILE")), where + "the key from its Secret");
            assertEquals("blip2-cluster-tls", secretIn(mountedSecret, env.get("BLIP2_CLUSTER_TLS_DIR")), where + "the certificates from theirs");
            for (HasMetadata r : all) {
                if (r instanceof ConfigMap m && m.getData() != null) {
                    for (String text : m.getData().values()) {
                        assertFalse(text.contains("PRIVATE KEY") || text.matches("(?s).*\\b[A-Za-z0-9+/]{43}=.*")
                                || text.contains("key_file:") || text.contains("tls_dir:"), where + "no key material in ConfigMap " + m.getMetadata().getName());
                    }
                }
                assertFalse(r.getKind().equals("Secret"), where + "the overlays carry no Secret: they are made apart (k8s/README.md)");
            }
        }
    }

    /** The Secret mounted at a folder holding {@code path} (or the folder itself). */
    private static String secretIn(Map<String, String> mounts, String path) {
        assertNotNull(path, "the setting is given");
        return mounts.entrySet().stream().filter(e -> path.equals(e.getKey()) || path.startsWith(e.getKey() + "/"))
                .map(Map.Entry::getValue).findFirst().orElse(null);
    }

    /** https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline and restricted), plus readOnlyRootFilesystem. */
    static void assertRestricted(PodSpec pod, String where) {
        assertFalse(Boolean.TRUE.equals(pod.getHostNetwork()) || Boolean.TRUE.equals(pod.getHostPID()) || Boolean.TRUE.equals(pod.getHostIPC()),
                where + "no host namespaces");
        var psc = pod.getSecurityContext();
        assertNotNull(psc, where + "a pod security context");
        Set<String> allowedVolumes = Set.of("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret");
        for (Volume v : pod.getVolumes()) {
            JsonNode n = ManifestTest.YAML.valueToTree(v);
            n.fieldNames().forEachRemaining(f -> assertTrue(f.equals("name") || allowedVolumes.contains(f), where + "volume type " + f));
        }
        List<Container> containers = new ArrayList<>(pod.getContainers());
        if (pod.getInitContainers() != null) {
            containers.addAll(pod.getInitContainers());
        }
        Set<String> writable = new HashSet<>();
        for (Container c : containers) {
            SecurityContext sc = c.getSecurityContext();
            assertNotNull(sc, where + c.getName() + ": a security context");
            assertFalse(Boolean.TRUE.equals(sc.getPrivileged()), where + "not privileged");
            assertEquals(Boolean.FALSE, sc.getAllowPrivilegeEscalation(), where + "allowPrivilegeEscalation: false");
            assertTrue(sc.getCapabilities() != null && sc.getCapabilities().getDrop().contains("ALL"), where + "every capability dropped");
            assertTrue(sc.getCapabilities().getAdd() == null || sc.getCapabilities().getAdd().stream().allMatch("NET_BIND_SERVICE"::equals),
                    where + "none added back");
            boolean nonRoot = Boolean.TRUE.equals(sc.getRunAsNonRoot()) || (sc.getRunAsNonRoot() == null && Boolean.TRUE.equals(psc.getRunAsNonRoot()));
            assertTrue(nonRoot, where + "runAsNonRoot");
            Long uid = sc.getRunAsUser() != null ? sc.getRunAsUser() : psc.getRunAsUser();
            assertTrue(uid == null || uid != 0, where + "not uid 0");
            String seccomp = sc.getSeccompProfile() != null ? sc.getSeccompProfile().getType()
                    : psc.getSeccompProfile() != null ? psc.getSeccompProfile().getType() : null;
            assertTrue("RuntimeDefault".equals(seccomp) || "Localhost".equals(seccomp), where + "seccomp RuntimeDefault: " + seccomp);
            assertEquals(Boolean.TRUE, sc.getReadOnlyRootFilesystem(), where + "a read-only root filesystem");
            c.getPorts().forEach(p -> assertTrue(p.getHostPort() == null || p.getHostPort() == 0, where + "no host port"));
            for (VolumeMount m : c.getVolumeMounts()) {
                if (!Boolean.TRUE.equals(m.getReadOnly())) {
                    writable.add(m.getMountPath());
                }
            }
        }
        assertTrue(writable.containsAll(Set.of("/data", "/tmp")), where + "the service writes to /data and /tmp, on volumes: " + writable);
    }
}
