package io.blip2stream.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.service.ServiceHarness;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 24, item 5, deploy/: the files Docker reads, checked by reading them (no Docker engine here) and by running
 * what they run. The build context's .dockerignore keeps out the build output, git, local data and keys, and
 * nothing any Dockerfile COPYs; each image's HEALTHCHECK, run with bash as Docker runs it, passes against the real
 * service (with bearer tokens configured) and fails against a closed port and a failing endpoint; the natives'
 * caches are folders made at build time, owned by the non-root user; the comment on the baked-in models is true.
 */
@Tag("broker")
public class DeployFilesTest {
    public static final List<Path> DOCKERFILES = List.of(Path.of("deploy/Dockerfile"), Path.of("deploy/Dockerfile.gpu"));
    /** where the service serves its metrics (HttpVerticle), and where components/servicemonitor scrapes them */
    static final String METRICS_PATH = "/metrics";

    @TempDir
    Path tmp;

    /** The Dockerfile's instructions, continuation lines joined, comments dropped. */
    static List<String> instructions(Path dockerfile) throws Exception {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (String line : Files.readAllLines(dockerfile)) {
            if (line.strip().startsWith("#") && cur.length() == 0) {
                continue;
            }
            if (line.endsWith("\\")) {
                cur.append(line, 0, line.length() - 1).append(' ');
            } else {
                cur.append(line);
                if (!cur.toString().isBlank()) {
                    out.add(cur.toString().strip());
                }
                cur.setLength(0);
            }
        }
        return out;
    }

    // ---- .dockerignore

    /** Docker's .dockerignore rules (moby/patternmatcher): root-anchored globs, the last match decides, a folder's match covers what is in it. */
    record DockerIgnore(List<Pattern> patterns, List<Boolean> exclusions) {
        static DockerIgnore read(Path file) throws Exception {
            List<Pattern> ps = new ArrayList<>();
            List<Boolean> neg = new ArrayList<>();
            for (String raw : Files.readAllLines(file)) {
                String l = raw.strip();
                if (l.isEmpty() || l.startsWith("#")) {
                    continue;
                }
                boolean exception = l.startsWith("!");
                if (exception) {
                    l = l.substring(1).strip();
                }
                l = l.replaceAll("^/+", "").replaceAll("/+$", "");
                ps.add(Pattern.compile(glob(l)));
                neg.add(exception);
            }
            return new DockerIgnore(ps, neg);
        }

        static String glob(String g) {
            StringBuilder re = new StringBuilder();
            for (int i = 0; i < g.length(); i++) {
                char ch = g.charAt(i);
                if (ch == '*' && i + 1 < g.length() && g.charAt(i + 1) == '*') {
                    i++;
                    if (i + 1 < g.length() && g.charAt(i + 1) == '/') {
                        i++;
                        re.append("(?:.*/)?"); // **/ : any folders, or none
                    } else {
                        re.append(".*");
                    }
                } else if (ch == '*') {
                    re.append("[^/]*");
                } else if (ch == '?') {
                    re.append("[^/]");
                } else {
                    re.append(Pattern.quote(String.valueOf(ch)));
                }
            }
            return re.toString();
        }

        /** Whether the path (relative to the context, '/'-separated) is left out of the build context. */
        boolean excluded(String path) {
            boolean out = false;
            for (int i = 0; i < patterns.size(); i++) {
                if (matchesOrParent(patterns.get(i), path)) {
                    out = !exclusions.get(i);
                }
            }
            return out;
        }

        private static boolean matchesOrParent(Pattern p, String path) {
            String cur = path;
            while (true) {
                if (p.matcher(cur).matches()) {
                    return true;
                }
                int slash = cur.lastIndexOf('/');
                if (slash < 0) {
                    return false;
                }
                cur = cur.substring(0, slash);
            }
        }
    }

    /** The build-context sources of the COPY and ADD instructions (not those from another stage). */
    static List<String> copySources(Path dockerfile) throws Exception {
        List<String> out = new ArrayList<>();
        for (String ins : instructions(dockerfile)) {
            String[] words = ins.split("\\s+");
            if (!(words[0].equalsIgnoreCase("COPY") || words[0].equalsIgnoreCase("ADD"))) {
                continue;
            }
            List<String> args = new ArrayList<>();
            boolean fromStage = false;
            for (int i = 1; i < words.length; i++) {
                if (words[i].startsWith("--")) {
                    fromStage |= words[i].startsWith("--from=");
                } else {
                    args.add(words[i]);
                }
            }
            assertFalse(args.isEmpty() || args.get(0).startsWith("["), dockerfile + ": a COPY in the plain form: " + ins);
            if (!fromStage) {
                out.addAll(args.subList(0, args.size() - 1));
            }
        }
        return out;
    }

    static List<String> trackedFiles(String under) throws Exception {
        Process p = new ProcessBuilder("git", "ls-files", "--", under).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, "git ls-files: " + out);
        return out.lines().filter(l -> !l.isBlank()).toList();
    }

    @Test
    void theBuildContextKeepsWhatTheImagesCopyAndNothingPrivateOrBuilt() throws Exception {
        DockerIgnore ignore = DockerIgnore.read(Path.of(".dockerignore"));
        // the parser itself, on Docker's documented rules
        DockerIgnore rules = DockerIgnore.read(Files.writeString(tmp.resolve("rules"), "# a comment\n/*.md\n!README.md\n**/b/\n"));
        assertTrue(rules.excluded("NOTES.md") && !rules.excluded("README.md") && !rules.excluded("docs/x.md"), "root-anchored, the last match decides");
        assertTrue(rules.excluded("b") && rules.excluded("a/b/c") && !rules.excluded("ab"), "**/ at any depth, a folder's match covers its files");

        List<String> sources = new ArrayList<>();
        for (Path f : DOCKERFILES) {
            sources.addAll(copySources(f));
        }
        assertTrue(sources.containsAll(List.of("pom.xml", "conf", "src/main", "models")), "the sources the images are built from: " + sources);
        for (String src : sources) {
            String s = src.replaceAll("^\\./", "").replaceAll("/+$", "");
            assertFalse(ignore.excluded(s), ".dockerignore leaves out " + s + ", which a Dockerfile COPYs");
            List<String> files = trackedFiles(s);
            assertFalse(files.isEmpty(), "git tracks " + s);
            for (String file : files) {
                assertFalse(ignore.excluded(file), ".dockerignore leaves out " + file + ", under " + s + " which a Dockerfile COPYs");
            }
        }
        for (String out : List.of("target", "target/blip2-stream.jar", "target/lib/x.jar", ".git", ".git/HEAD", "data", "data/kafka/meta.properties",
                "certs", "certs/ca-key.p12", "deploy/certs/node1/node-key.pem", "deploy/cluster.key", "cluster.key", "src/test/java/X.java",
                "serve.log", "load-tests/results/run.log", "node_modules/x/index.js", ".idea/workspace.xml", "blip2-stream.iml")) {
            assertTrue(ignore.excluded(out), ".dockerignore keeps " + out + " out of the build context");
        }
    }

    // ---- HEALTHCHECK

    public record HealthCheck(Map<String, String> options, List<String> command) {}

    public static HealthCheck healthCheck(Path dockerfile) throws Exception {
        List<String> found = instructions(dockerfile).stream().filter(i -> i.startsWith("HEALTHCHECK")).toList();
        assertEquals(1, found.size(), dockerfile + ": one HEALTHCHECK");
        String ins = found.get(0);
        Matcher m = Pattern.compile("^HEALTHCHECK((?:\\s+--[a-z-]+=\\S+)*)\\s+CMD\\s+(\\[.*])$").matcher(ins);
        assertTrue(m.matches(), dockerfile + ": HEALTHCHECK [OPTIONS] CMD [exec form]: " + ins);
        Map<String, String> options = new LinkedHashMap<>();
        Matcher o = Pattern.compile("--([a-z-]+)=(\\S+)").matcher(m.group(1));
        while (o.find()) {
            options.put(o.group(1), o.group(2));
        }
        List<String> cmd = new ArrayList<>();
        ManifestTest.YAML.readTree(m.group(2)).forEach(n -> cmd.add(n.asText())); // JSON, which YAML reads
        return new HealthCheck(options, cmd);
    }

    /** A Docker duration (30s, 10m, 1m30s) in seconds. */
    static long seconds(String d) {
        long total = 0;
        Matcher m = Pattern.compile("(\\d+)(h|m|s)").matcher(d);
        int end = 0;
        while (m.find()) {
            assertEquals(end, m.start(), "a duration: " + d);
            total += Long.parseLong(m.group(1)) * (m.group(2).equals("h") ? 3600 : m.group(2).equals("m") ? 60 : 1);
            end = m.end();
        }
        assertEquals(d.length(), end, "a duration: " + d);
        return total;
    }

    /** Runs the check as Docker does (exec form, the container's environment with BLIP2_HTTP_PORT), its exit status. */
    public static int run(HealthCheck hc, int port) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(hc.command()).redirectErrorStream(true);
        pb.environment().put("BLIP2_HTTP_PORT", String.valueOf(port));
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        long timeout = seconds(hc.options().get("timeout"));
        assertTrue(p.waitFor(timeout, TimeUnit.SECONDS), "the check ends within its --timeout: " + out);
        return p.exitValue();
    }

    @Test
    void eachImageChecksItsHealthAgainstTheRunningService() throws Exception {
        Deployment d = (Deployment) ManifestTest.load(ManifestTest.K8S.resolve("base/deployment.yaml")).get(0);
        Probe startup = d.getSpec().getTemplate().getSpec().getContainers().get(0).getStartupProbe();
        long startupWindow = (long) startup.getPeriodSeconds() * startup.getFailureThreshold();
        List<HealthCheck> checks = new ArrayList<>();
        for (Path f : DOCKERFILES) {
            HealthCheck hc = healthCheck(f);
            checks.add(hc);
            assertEquals("bash", hc.command().get(0), f + ": bash, which both images have (no curl or wget there)");
            assertTrue(String.join(" ", hc.command()).contains("/health/live"), f + ": liveness, not readiness (a node waiting for Kafka is not broken)");
            assertTrue(seconds(hc.options().get("timeout")) < seconds(hc.options().get("interval")), f.toString());
            assertTrue(seconds(hc.options().get("start-period")) >= startupWindow,
                    f + ": the start period gives a checkpoint as long to load as the Kubernetes startup probe does (" + startupWindow + " s)");
            assertTrue(Integer.parseInt(hc.options().getOrDefault("retries", "3")) >= 2, f.toString());
        }
        assertEquals(checks.get(0), checks.get(1), "both images check alike");

        // the real service, with bearer tokens configured: the check needs none, and localhost is an allowed host
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of("http.auth_tokens", "s3cret"))) {
            int port = h.service.httpPort();
            HttpClient http = HttpClient.newHttpClient();
            assertEquals(401, http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/models")).build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode(), "the tokens are in force");
            for (HealthCheck hc : checks) {
                assertEquals(0, run(hc, port), "healthy: " + hc.command());
            }
            // what components/servicemonitor scrapes: no token, and Prometheus's Host (the pod's address) or any other
            JsonNode sm = ManifestTest.YAML.readTree(ManifestTest.K8S.resolve("components/servicemonitor/servicemonitor.yaml").toFile());
            assertEquals(METRICS_PATH, sm.path("spec").path("endpoints").get(0).path("path").asText());
            HttpResponse<String> metrics = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + METRICS_PATH)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, metrics.statusCode(), "metrics without a token");
            assertTrue(metrics.body().contains("# TYPE "), "in Prometheus's text format");
            assertTrue(metrics.headers().firstValue("content-type").orElse("").startsWith("text/plain"));
        }
        // a closed port (the service not up), and an endpoint that fails: unhealthy
        int closed;
        try (ServerSocket s = new ServerSocket(0)) {
            closed = s.getLocalPort();
        }
        com.sun.net.httpserver.HttpServer failing = com.sun.net.httpserver.HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        failing.createContext("/", ex -> {
            ex.sendResponseHeaders(503, -1);
            ex.close();
        });
        failing.start();
        try {
            for (HealthCheck hc : checks) {
                assertNotEquals(0, run(hc, closed), "unhealthy when nothing listens");
                assertNotEquals(0, run(hc, failing.getAddress().getPort()), "unhealthy on a 503");
            }
        } finally {
            failing.stop(0);
        }
    }

    // ---- the images' caches and comments

    @Test
    void theNativesCachesAreFoldersOfTheRuntimeUserMadeAtBuildTime() throws Exception {
        for (Path f : DOCKERFILES) {
            List<String> ins = instructions(f);
            String text = String.join("\n", ins);
            assertTrue(text.contains("-Dorg.bytedeco.javacpp.cachedir=/app/.javacpp"), f + ": JavaCPP's cache");
            assertTrue(Pattern.compile("(?m)^ENV .*DJL_CACHE_DIR=/app/\\.djl\\b").matcher(text).find(), f + ": DJL's cache");
            int user = indexOf(ins, "USER 10001");
            assertTrue(user > 0, f + ": runs as uid 10001");
            // made before the image runs, as root, and handed to the runtime user
            String beforeUser = String.join("\n", ins.subList(0, user));
            assertTrue(Pattern.compile("mkdir -p [^&]*/app/\\.javacpp[^&]*/app/\\.djl").matcher(beforeUser).find(), f + ": both folders made at build time");
            assertTrue(Pattern.compile("chown (-R )?10001 [^&]*/app/\\.javacpp[^&]*/app/\\.djl").matcher(beforeUser).find(),
                    f + ": owned by the runtime user, so natives extracted at start stay for the container's life");
        }
        // the CPU image extracts at build time, then hands them over (after the extraction, not before)
        List<String> cpu = instructions(DOCKERFILES.get(0));
        String extraction = cpu.stream().filter(i -> i.startsWith("RUN java -jar")).findFirst().orElseThrow();
        assertTrue(extraction.indexOf("chown -R 10001 /app/.javacpp /app/.djl") > extraction.lastIndexOf("--engine pytorch"), "chown after extracting");
    }

    @Test
    void theCommentsDescribeTheModelsTheImageCarries() throws Exception {
        String cpu = Files.readString(DOCKERFILES.get(0));
        assertFalse(cpu.toLowerCase().contains("tiny test model"), "the models in models/ are trained scene models, not test fixtures");
        for (String model : List.of("blip2-scenes-opt", "blip2-scenes-itm")) {
            assertTrue(cpu.contains(model), "names " + model);
            assertTrue(Files.isDirectory(Path.of("models", model)), model + " is in models/");
        }
        assertTrue(cpu.contains("COPY models /app/models"));
    }

    private static int indexOf(List<String> ins, String instruction) {
        for (int i = 0; i < ins.size(); i++) {
            if (ins.get(i).equals(instruction)) {
                return i;
            }
        }
        return -1;
    }
}
