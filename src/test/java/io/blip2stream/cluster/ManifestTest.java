package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.blip2stream.service.ServiceHarness;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.fabric8.kubernetes.api.model.rbac.Role;
import io.fabric8.kubernetes.api.model.rbac.RoleBinding;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Kubernetes manifests (k8s/) parsed into the Kubernetes model (fabric8), checked against the application:
 * kinds, probes against the real endpoints and ports of a running service, selectors against labels, environment
 * names against the settings the application reads, autoscaling against the partition count; and the container
 * files' settings (deploy/) against the same names.
 */
@Tag("broker")
class ManifestTest {
    static final Path K8S = Path.of("k8s");
    static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    static final KubernetesSerialization KUBE = new KubernetesSerialization();
    /** What the application reads (ConfigLoader) and the few variables the platform itself uses. */
    static final Set<String> KNOWN_ENV = new HashSet<>(ConfigLoader.ENVIRONMENT.keySet());

    static {
        KNOWN_ENV.addAll(List.of("POD_IP", "JAVA_TOOL_OPTIONS", "DJL_CACHE_DIR", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"));
    }

    @TempDir
    Path tmp;

    static List<HasMetadata> load(Path file) throws Exception {
        List<HasMetadata> out = new ArrayList<>();
        String text = Files.readString(file);
        for (String doc : text.split("(?m)^---\\s*$")) {
            if (doc.strip().isEmpty() || doc.lines().allMatch(l -> l.isBlank() || l.strip().startsWith("#"))) {
                continue;
            }
            Object o = KUBE.unmarshal(doc);
            out.add((HasMetadata) o);
        }
        return out;
    }

    static List<HasMetadata> resourcesOf(Path kustomizationDir) throws Exception {
        JsonNode k = YAML.readTree(kustomizationDir.resolve("kustomization.yaml").toFile());
        List<HasMetadata> out = new ArrayList<>();
        for (JsonNode r : k.path("resources")) {
            Path p = kustomizationDir.resolve(r.asText());
            if (Files.isRegularFile(p)) {
                out.addAll(load(p));
            }
        }
        return out;
    }

    static <T> T one(List<HasMetadata> all, Class<T> type, String name) {
        return all.stream().filter(type::isInstance).map(type::cast)
                .filter(r -> ((HasMetadata) r).getMetadata().getName().equals(name)).findFirst()
                .orElseThrow(() -> new AssertionError("no " + type.getSimpleName() + " " + name));
    }

    @Test
    void theBaseMatchesTheApplication() throws Exception {
        ServiceConfig defaults = ConfigLoader.load(null, Map.of(), Map.of());
        List<HasMetadata> base = resourcesOf(K8S.resolve("base"));
        Set<String> kinds = new HashSet<>();
        base.forEach(r -> kinds.add(r.getKind()));
        assertEquals(Set.of("Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "PodDisruptionBudget", "NetworkPolicy"), kinds);

        Deployment d = one(base, Deployment.class, "blip2-stream");
        var pod = d.getSpec().getTemplate().getSpec();
        var c = pod.getContainers().get(0);
        Map<String, Integer> ports = new java.util.HashMap<>();
        for (ContainerPort p : c.getPorts()) {
            ports.put(p.getName(), p.getContainerPort());
        }
        assertEquals(defaults.httpPort(), ports.get("http"), "the app listens on http.port");
        assertEquals(defaults.cluster().port(), ports.get("hazelcast"), "Hazelcast's cluster.port");
        Probe ready = c.getReadinessProbe();
        Probe live = c.getLivenessProbe();
        assertEquals("/health/ready", ready.getHttpGet().getPath());
        assertEquals("/health/live", live.getHttpGet().getPath());
        assertEquals("/health/live", c.getStartupProbe().getHttpGet().getPath());
        for (Probe p : List.of(ready, live, c.getStartupProbe())) {
            assertTrue(ports.containsKey(p.getHttpGet().getPort().getStrVal()), "a probe's port is a container port");
        }
        // the probes' endpoints answer on a running service, on that port's role
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of())) {
            HttpClient http = HttpClient.newHttpClient();
            for (Probe p : List.of(ready, live)) {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + h.service.httpPort()
                        + p.getHttpGet().getPath())).build(), HttpResponse.BodyHandlers.ofString());
                assertEquals(200, r.statusCode(), p.getHttpGet().getPath() + ": " + r.body());
            }
        }
        assertTrue(d.getSpec().getTemplate().getSpec().getTerminationGracePeriodSeconds() * 1000 > 40_000 + 5_000,
                "the grace period covers the drain (application-kubernetes.yaml) and the preStop pause");

        // environment names are settings the application reads
        for (EnvVar e : c.getEnv()) {
            assertTrue(KNOWN_ENV.contains(e.getName()), "unknown environment variable " + e.getName());
        }
        // the ConfigMap's file has only keys conf/application.yaml defines, and asks for Kubernetes discovery
        ServiceConfig k8s = ConfigLoader.load(K8S.resolve("base/application-kubernetes.yaml"), Map.of(), Map.of());
        assertTrue(k8s.cluster().kubernetes());
        assertTrue(c.getArgs().containsAll(List.of("serve", "--config", "/etc/blip2/config.yaml")));
        assertTrue(c.getVolumeMounts().stream().anyMatch(m -> m.getMountPath().equals("/etc/blip2") && m.getName().equals("config")));
        JsonNode kz = YAML.readTree(K8S.resolve("base/kustomization.yaml").toFile());
        assertEquals("config.yaml=application-kubernetes.yaml", kz.path("configMapGenerator").get(0).path("files").get(0).asText());

        // selectors pick the pod template's labels
        Map<String, String> labels = d.getSpec().getTemplate().getMetadata().getLabels();
        assertTrue(labels.entrySet().containsAll(d.getSpec().getSelector().getMatchLabels().entrySet()));
        Service web = one(base, Service.class, "blip2-stream");
        Service headless = one(base, Service.class, k8s.cluster().serviceName());
        for (Service s : List.of(web, headless)) {
            assertTrue(labels.entrySet().containsAll(s.getSpec().getSelector().entrySet()), s.getMetadata().getName());
            s.getSpec().getPorts().forEach(p -> assertTrue(ports.containsKey(p.getTargetPort().getStrVal()), "targetPort " + p.getTargetPort()));
        }
        assertEquals("None", headless.getSpec().getClusterIP(), "Hazelcast discovery needs a headless Service");
        PodDisruptionBudget pdb = one(base, PodDisruptionBudget.class, "blip2-stream");
        assertTrue(labels.entrySet().containsAll(pdb.getSpec().getSelector().getMatchLabels().entrySet()));

        // RBAC: the pods' service account may read the endpoints Hazelcast discovers members from
        ServiceAccount sa = one(base, ServiceAccount.class, pod.getServiceAccountName());
        Role role = one(base, Role.class, "blip2-stream-hazelcast");
        assertTrue(role.getRules().stream().anyMatch(r -> r.getResources().contains("endpoints") && r.getVerbs().containsAll(List.of("get", "list"))));
        RoleBinding rb = one(base, RoleBinding.class, "blip2-stream-hazelcast");
        assertEquals(role.getMetadata().getName(), rb.getRoleRef().getName());
        assertTrue(rb.getSubjects().stream().anyMatch(s -> s.getKind().equals("ServiceAccount") && s.getName().equals(sa.getMetadata().getName())));
    }

    @Test
    void autoscalingNeverExceedsThePartitions() throws Exception {
        ServiceConfig defaults = ConfigLoader.load(null, Map.of(), Map.of());
        ServiceConfig k8s = ConfigLoader.load(K8S.resolve("base/application-kubernetes.yaml"), Map.of(), Map.of());
        int partitions = k8s.kafka().partitions();
        GenericKubernetesResource keda = (GenericKubernetesResource) resourcesOf(K8S.resolve("components/keda")).get(0);
        assertEquals("ScaledObject", keda.getKind());
        Map<String, Object> spec = keda.get("spec");
        assertTrue(((Number) spec.get("maxReplicaCount")).intValue() <= partitions, "KEDA capped at the partition count");
        assertEquals("blip2-stream", ((Map<?, ?>) spec.get("scaleTargetRef")).get("name"));
        Map<?, ?> trigger = (Map<?, ?>) ((Map<?, ?>) ((List<?>) spec.get("triggers")).get(0)).get("metadata");
        assertEquals(defaults.kafka().topics().requests(), trigger.get("topic"));
        assertEquals(defaults.kafka().groupId(), trigger.get("consumerGroup"));
        HorizontalPodAutoscaler hpa = (HorizontalPodAutoscaler) resourcesOf(K8S.resolve("components/hpa")).get(0);
        assertTrue(hpa.getSpec().getMaxReplicas() <= partitions, "the HPA capped at the partition count");
        assertEquals("blip2-stream", hpa.getSpec().getScaleTargetRef().getName());
    }

    @Test
    void theGpuOverlayAsksForAGpuAndAWorkerOnIt() throws Exception {
        Deployment patch = (Deployment) load(K8S.resolve("overlays/gpu/gpu.yaml")).get(0);
        var c = patch.getSpec().getTemplate().getSpec().getContainers().get(0);
        assertEquals("1", c.getResources().getLimits().get("nvidia.com/gpu").getAmount());
        assertTrue(c.getEnv().stream().anyMatch(e -> e.getName().equals("BLIP2_DEVICES") && e.getValue().equals("gpu:0")));
        for (EnvVar e : c.getEnv()) {
            assertTrue(KNOWN_ENV.contains(e.getName()), e.getName());
        }
        JsonNode kz = YAML.readTree(K8S.resolve("overlays/gpu/kustomization.yaml").toFile());
        assertEquals("gpu", kz.path("images").get(0).path("newTag").asText());
    }

    @Test
    void theContainerFilesUseSettingsTheApplicationReads() throws Exception {
        JsonNode compose = YAML.readTree(Path.of("deploy/docker-compose.yml").toFile());
        for (String node : List.of("node1", "node2")) {
            compose.path("services").path(node).path("environment").fieldNames().forEachRemaining(n -> {
                if (!n.equals("<<")) { // the YAML merge of node1's environment, checked there
                    assertTrue(KNOWN_ENV.contains(n), "docker-compose " + node + ": " + n);
                }
            });
        }
        for (String f : List.of("deploy/Dockerfile", "deploy/Dockerfile.gpu")) {
            Matcher m = Pattern.compile("(?m)^\\s*(?:ENV\\s+)?(\\w+)=").matcher(Files.readString(Path.of(f)).replaceAll("\\\\\\n", "\n"));
            int seen = 0;
            while (m.find()) {
                assertTrue(KNOWN_ENV.contains(m.group(1)), f + ": " + m.group(1));
                seen++;
            }
            assertTrue(seen >= 3, f);
        }
        try (InputStream in = Files.newInputStream(Path.of("deploy/Dockerfile"))) {
            String text = new String(in.readAllBytes());
            assertTrue(text.contains("USER 10001"), "a non-root user");
            assertNotNull(text);
        }
    }
}
