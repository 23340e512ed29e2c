package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServicePort;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyIngressRule;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPeer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 24, item 5: the optional components (KEDA, an HPA, a Strimzi Kafka, a ServiceMonitor) as {@code kubectl
 * kustomize} renders them composed onto each overlay, in a kustomization written to a temporary folder, as an operator
 * would write it; checked against the configuration the rendered pods get (their ConfigMap over the defaults, and
 * their environment). The overlays themselves render nothing that needs a CRD.
 */
class KustomizeComponentsTest {
    static final Path K8S = ManifestTest.K8S.toAbsolutePath();
    /** the namespace Prometheus is expected in (components/servicemonitor, base/networkpolicy.yaml, k8s/README.md) */
    static final String MONITORING_NAMESPACE = "monitoring";
    static final Set<String> BUILT_IN_GROUPS = Set.of("v1", "apps/v1", "policy/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1");

    @TempDir
    Path tmp;
    private int renders;

    /** A kustomization of the overlay and the components, in that order, rendered. */
    List<HasMetadata> compose(String overlay, String... components) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("k" + (++renders)));
        StringBuilder k = new StringBuilder("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ")
                .append(dir.relativize(K8S.resolve("overlays").resolve(overlay))).append("\ncomponents:\n");
        for (String c : components) {
            k.append("  - ").append(dir.relativize(K8S.resolve("components").resolve(c))).append('\n');
        }
        Files.writeString(dir.resolve("kustomization.yaml"), k.toString());
        return KustomizeTest.render(dir, Files.createDirectories(tmp.resolve("out" + renders)));
    }

    static Deployment deployment(List<HasMetadata> all) {
        return ManifestTest.one(all, Deployment.class, "blip2-stream");
    }

    static Container container(List<HasMetadata> all) {
        return deployment(all).getSpec().getTemplate().getSpec().getContainers().get(0);
    }

    /** What the rendered pods run with: their ConfigMap's file over the defaults, then their literal environment. */
    ServiceConfig podConfig(List<HasMetadata> all) throws Exception {
        ConfigMap config = all.stream().filter(ConfigMap.class::isInstance).map(ConfigMap.class::cast)
                .filter(m -> m.getMetadata().getName().startsWith("blip2-config")).findFirst().orElseThrow();
        Path file = Files.writeString(Files.createTempFile(tmp, "config", ".yaml"), config.getData().get("config.yaml"));
        Map<String, String> env = new HashMap<>();
        for (EnvVar e : container(all).getEnv()) {
            if (e.getValue() != null) {
                env.put(e.getName(), e.getValue());
            }
        }
        return ConfigLoader.load(file, env, Map.of());
    }

    static List<JsonNode> custom(List<HasMetadata> all, String kind) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (HasMetadata r : all) {
            if (r.getKind().equals(kind)) {
                assertTrue(r instanceof GenericKubernetesResource, kind + " is a custom resource");
                out.add(ManifestTest.YAML.valueToTree(r));
            }
        }
        return out;
    }

    static JsonNode single(List<HasMetadata> all, String kind) throws Exception {
        List<JsonNode> found = custom(all, kind);
        assertEquals(1, found.size(), "one " + kind);
        return found.get(0);
    }

    @Test
    void theOverlaysNeedNoCrdAndCarryNoOptionalComponent() throws Exception {
        for (String overlay : List.of("cpu", "gpu")) {
            List<HasMetadata> all = compose(overlay);
            Set<String> kinds = all.stream().map(HasMetadata::getKind).collect(Collectors.toCollection(TreeSet::new));
            assertEquals(new TreeSet<>(Set.of("ConfigMap", "Deployment", "Service", "ServiceAccount", "Role", "RoleBinding",
                    "PodDisruptionBudget", "NetworkPolicy")), kinds, overlay + ": only the base's kinds (no ScaledObject, HPA, ServiceMonitor, Kafka)");
            for (HasMetadata r : all) {
                assertTrue(BUILT_IN_GROUPS.contains(r.getApiVersion()), overlay + ": " + r.getKind() + " " + r.getApiVersion() + " is built in (no CRD)");
            }
            // and the files say so: no overlay lists a component
            JsonNode kz = ManifestTest.YAML.readTree(K8S.resolve("overlays").resolve(overlay).resolve("kustomization.yaml").toFile());
            assertTrue(kz.path("components").isMissingNode() || kz.path("components").isEmpty(), overlay + " lists no component");
        }
    }

    @Test
    void kedaScalesTheDeploymentOnTheTopicGroupAndKafkaThePodsUse() throws Exception {
        for (String overlay : List.of("cpu", "gpu")) {
            List<HasMetadata> all = compose(overlay, "keda");
            assertKedaAgrees(all, overlay + "+keda: ");
            assertTrue(all.stream().noneMatch(HorizontalPodAutoscaler.class::isInstance), "KEDA brings no HPA of ours beside its own");
        }
        // with a Strimzi Kafka, in either order: the pods and KEDA both on its bootstrap Service
        for (List<String> order : List.of(List.of("keda", "strimzi-kafka"), List.of("strimzi-kafka", "keda"))) {
            List<HasMetadata> all = compose("cpu", order.toArray(new String[0]));
            String where = "cpu+" + order + ": ";
            assertKedaAgrees(all, where);
            assertEquals(strimziBootstrap(all), podConfig(all).kafka().bootstrapServers(), where + "the pods on the Strimzi Kafka");
        }
    }

    void assertKedaAgrees(List<HasMetadata> all, String where) throws Exception {
        ServiceConfig pods = podConfig(all);
        Deployment d = deployment(all);
        JsonNode so = single(all, "ScaledObject");
        assertEquals("keda.sh/v1alpha1", so.path("apiVersion").asText());
        JsonNode target = so.path("spec").path("scaleTargetRef");
        assertEquals(d.getMetadata().getName(), target.path("name").asText(), where + "targets the Deployment");
        assertEquals("Deployment", target.path("kind").asText("Deployment"), where);
        assertEquals(d.getApiVersion(), target.path("apiVersion").asText("apps/v1"), where);
        int max = so.path("spec").path("maxReplicaCount").asInt();
        int min = so.path("spec").path("minReplicaCount").asInt();
        assertTrue(min >= 1 && min <= max, where + "replicas " + min + ".." + max);
        assertTrue(max <= pods.kafka().partitions(), where + "never more consumers than partitions (" + pods.kafka().partitions() + ")");
        List<JsonNode> kafka = new ArrayList<>();
        so.path("spec").path("triggers").forEach(t -> {
            if (t.path("type").asText().equals("kafka")) {
                kafka.add(t.path("metadata"));
            }
        });
        assertEquals(1, kafka.size(), where + "one Kafka trigger");
        JsonNode t = kafka.get(0);
        assertEquals(pods.kafka().topics().requests(), t.path("topic").asText(), where + "the lag of the topic the pods consume");
        assertEquals(pods.kafka().groupId(), t.path("consumerGroup").asText(), where + "of the pods' consumer group");
        assertFalse(pods.kafka().embedded(), where + "the pods use an outside Kafka");
        assertEquals(pods.kafka().bootstrapServers(), t.path("bootstrapServers").asText(), where + "on the Kafka the pods use");
    }

    @Test
    void theHpaScalesTheDeploymentWithinThePartitions() throws Exception {
        for (String overlay : List.of("cpu", "gpu")) {
            List<HasMetadata> all = compose(overlay, "hpa");
            String where = overlay + "+hpa: ";
            ServiceConfig pods = podConfig(all);
            Deployment d = deployment(all);
            HorizontalPodAutoscaler hpa = ManifestTest.one(all, HorizontalPodAutoscaler.class, "blip2-stream");
            assertEquals("Deployment", hpa.getSpec().getScaleTargetRef().getKind());
            assertEquals(d.getApiVersion(), hpa.getSpec().getScaleTargetRef().getApiVersion());
            assertEquals(d.getMetadata().getName(), hpa.getSpec().getScaleTargetRef().getName(), where + "targets the Deployment");
            assertTrue(hpa.getSpec().getMaxReplicas() <= pods.kafka().partitions(), where + "maxReplicas <= partitions (" + pods.kafka().partitions() + ")");
            assertTrue(hpa.getSpec().getMinReplicas() >= 1 && hpa.getSpec().getMinReplicas() <= hpa.getSpec().getMaxReplicas(), where);
            // utilization is a share of the request: each container asks for CPU
            assertTrue(hpa.getSpec().getMetrics().stream().allMatch(m -> m.getResource() != null && "cpu".equals(m.getResource().getName())), where);
            assertNotNull(container(all).getResources().getRequests().get("cpu"), where + "a CPU request to scale on");
            assertTrue(custom(all, "ScaledObject").isEmpty(), where + "no KEDA");
        }
    }

    @Test
    void theServiceMonitorScrapesWhatThePodsServeAndThePolicyAdmits() throws Exception {
        for (String overlay : List.of("cpu", "gpu")) {
            List<HasMetadata> all = compose(overlay, "servicemonitor");
            String where = overlay + "+servicemonitor: ";
            ServiceConfig pods = podConfig(all);
            Container c = container(all);
            JsonNode sm = single(all, "ServiceMonitor");
            assertEquals("monitoring.coreos.com/v1", sm.path("apiVersion").asText());
            Map<String, String> selector = ManifestTest.YAML.convertValue(sm.path("spec").path("selector").path("matchLabels"),
                    ManifestTest.YAML.getTypeFactory().constructMapType(Map.class, String.class, String.class));
            assertFalse(selector.isEmpty(), where + "selects by labels");
            assertTrue(sm.path("spec").path("namespaceSelector").isMissingNode(), where + "in its own namespace, the Service's");
            List<Service> selected = all.stream().filter(Service.class::isInstance).map(Service.class::cast)
                    .filter(s -> s.getMetadata().getLabels() != null && s.getMetadata().getLabels().entrySet().containsAll(selector.entrySet()))
                    .toList();
            assertEquals(List.of("blip2-stream"), selected.stream().map(s -> s.getMetadata().getName()).toList(),
                    where + "the HTTP Service only, not the headless one");
            Service svc = selected.get(0);
            Map<String, String> podLabels = deployment(all).getSpec().getTemplate().getMetadata().getLabels();
            assertTrue(podLabels.entrySet().containsAll(svc.getSpec().getSelector().entrySet()), where + "whose selector picks the pods");
            JsonNode endpoints = sm.path("spec").path("endpoints");
            assertEquals(1, endpoints.size());
            JsonNode ep = endpoints.get(0);
            ServicePort port = svc.getSpec().getPorts().stream().filter(p -> p.getName().equals(ep.path("port").asText())).findFirst()
                    .orElseThrow(() -> new AssertionError(where + "the endpoint names a port of the Service: " + ep.path("port")));
            String containerPortName = port.getTargetPort().getStrVal();
            Integer containerPort = c.getPorts().stream().filter(p -> p.getName().equals(containerPortName))
                    .map(p -> p.getContainerPort()).findFirst().orElse(null);
            assertEquals(pods.httpPort(), containerPort, where + "the Service's port leads to the container port the service's HTTP listens on");
            assertEquals(DeployFilesTest.METRICS_PATH, ep.path("path").asText(), where + "the path the service serves its metrics on");
            assertEquals(pods.http().tls() ? "https" : "http", ep.path("scheme").asText("http"), where + "the scheme the pods speak");
            // the NetworkPolicy lets Prometheus's namespace reach that port
            NetworkPolicy np = ManifestTest.one(all, NetworkPolicy.class, "blip2-stream");
            boolean admitted = false;
            for (NetworkPolicyIngressRule rule : np.getSpec().getIngress()) {
                boolean port8080 = rule.getPorts().stream().anyMatch(p -> containerPortName.equals(p.getPort().getStrVal())
                        || containerPort.equals(p.getPort().getIntVal()));
                for (NetworkPolicyPeer peer : rule.getFrom()) {
                    if (port8080 && peer.getPodSelector() == null && peer.getNamespaceSelector() != null
                            && peer.getNamespaceSelector().getMatchLabels() != null
                            && MONITORING_NAMESPACE.equals(peer.getNamespaceSelector().getMatchLabels().get("kubernetes.io/metadata.name"))) {
                        admitted = true;
                    }
                }
            }
            assertTrue(admitted, where + "the NetworkPolicy admits the namespace " + MONITORING_NAMESPACE + " on the metrics port");
        }
    }

    @Test
    void theStrimziKafkaHoldsTheReplicasTheServiceAsksFor() throws Exception {
        for (String overlay : List.of("cpu", "gpu")) {
            List<HasMetadata> all = compose(overlay, "strimzi-kafka");
            String where = overlay + "+strimzi-kafka: ";
            ServiceConfig pods = podConfig(all);
            JsonNode kafka = single(all, "Kafka");
            assertEquals("kafka.strimzi.io/v1beta2", kafka.path("apiVersion").asText());
            assertEquals("enabled", kafka.path("metadata").path("annotations").path("strimzi.io/node-pools").asText(), where);
            assertEquals("enabled", kafka.path("metadata").path("annotations").path("strimzi.io/kraft").asText(), where);
            assertTrue(kafka.path("spec").path("zookeeper").isMissingNode(), where + "KRaft, no ZooKeeper");
            String name = kafka.path("metadata").path("name").asText();
            int brokers = 0;
            int controllers = 0;
            for (JsonNode pool : custom(all, "KafkaNodePool")) {
                assertEquals("kafka.strimzi.io/v1beta2", pool.path("apiVersion").asText());
                assertEquals(name, pool.path("metadata").path("labels").path("strimzi.io/cluster").asText(), where + "the pool belongs to the Kafka");
                List<String> roles = new ArrayList<>();
                pool.path("spec").path("roles").forEach(r -> roles.add(r.asText()));
                int replicas = pool.path("spec").path("replicas").asInt();
                brokers += roles.contains("broker") ? replicas : 0;
                controllers += roles.contains("controller") ? replicas : 0;
            }
            int rf = pods.kafka().replicationFactor();
            assertTrue(brokers >= rf, where + brokers + " brokers for the service's replication_factor " + rf);
            assertTrue(controllers >= 3 && controllers % 2 == 1, where + "a controller quorum that survives one loss: " + controllers);
            JsonNode config = kafka.path("spec").path("kafka").path("config");
            int minIsr = config.path("min.insync.replicas").asInt(1);
            assertTrue(minIsr >= 2 && minIsr < rf, where + "min.insync.replicas " + minIsr + ": acks=all writes survive a broker's loss, and go on with one broker down");
            int txRf = config.path("transaction.state.log.replication.factor").asInt(3);
            int txIsr = config.path("transaction.state.log.min.isr").asInt(2);
            int offsetsRf = config.path("offsets.topic.replication.factor").asInt(3);
            assertTrue(txRf <= brokers && txIsr < txRf && offsetsRf <= brokers, where + "the transaction log (exactly_once) and the offsets fit the brokers");
            assertTrue(config.path("message.max.bytes").asLong(1048588) >= pods.limits().maxRecordBytes(), where + "a request record of the largest size fits");
            assertTrue(custom(all, "KafkaTopic").isEmpty(), where + "the service creates its own topics (one place decides partitions and replicas)");
            // the pods on its bootstrap Service, through a listener without TLS (the pods' Kafka settings have none)
            assertEquals(strimziBootstrap(all), pods.kafka().bootstrapServers(), where + "the pods' bootstrap is the Kafka's bootstrap Service");
            assertFalse(pods.kafka().consumer().containsKey("security.protocol"), where);
        }
    }

    /** NAME-kafka-bootstrap:PORT of the rendered Kafka's plain internal listener. */
    static String strimziBootstrap(List<HasMetadata> all) throws Exception {
        JsonNode kafka = single(all, "Kafka");
        for (JsonNode l : kafka.path("spec").path("kafka").path("listeners")) {
            if (l.path("type").asText().equals("internal") && !l.path("tls").asBoolean()) {
                return kafka.path("metadata").path("name").asText() + "-kafka-bootstrap:" + l.path("port").asInt();
            }
        }
        throw new AssertionError("a plain internal listener");
    }

    @Test
    void theExampleComposesThemInOneNamespaceWithAddressesKedaResolves() throws Exception {
        Path example = K8S.resolve("examples/cpu-keda-strimzi");
        List<HasMetadata> all = KustomizeTest.render(example, Files.createDirectories(tmp.resolve("example")));
        String ns = deployment(all).getMetadata().getNamespace();
        assertNotNull(ns, "the example sets a namespace");
        for (HasMetadata r : all) {
            assertEquals(ns, r.getMetadata().getNamespace(), r.getKind() + " in the namespace");
        }
        assertKedaAgrees(all, "example: ");
        single(all, "ServiceMonitor");
        // KEDA's operator resolves the address from its own namespace: the Kafka's bootstrap Service qualified with its namespace
        String plain = strimziBootstrap(all);
        String host = plain.substring(0, plain.indexOf(':'));
        assertEquals(host + "." + single(all, "Kafka").path("metadata").path("namespace").asText() + ".svc" + plain.substring(plain.indexOf(':')),
                podConfig(all).kafka().bootstrapServers());
        KustomizeTest.assertRestricted(deployment(all).getSpec().getTemplate().getSpec(), "example: ");
    }
}
