package io.blip2stream.e2e;

import io.blip2stream.TestPorts;
import io.blip2stream.model.Fixtures;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code serve} from the packaged jar in a process of its own, with the tiny OPT fixture, an in-process broker and
 * HTTP on free ports, and its output collected; {@link #stop} sends SIGTERM as Kubernetes does.
 */
final class ServeProcess {
    final int kafkaPort;
    final int controllerPort;
    final int httpPort;
    final Process process;
    final StringBuffer log = new StringBuffer();
    private final CountDownLatch ready = new CountDownLatch(1);
    private final Thread reader;

    /**
     * @param jvmArgs   before {@code -jar} (e.g. {@code -Xmx1g})
     * @param serveArgs after {@code serve}
     * @param env       more environment variables
     */
    ServeProcess(Path dataDir, List<String> jvmArgs, List<String> serveArgs, Map<String, String> env) throws IOException {
        this(dataDir, jvmArgs, serveArgs, env, true, TestPorts.free(), TestPorts.free(), TestPorts.free());
    }

    /** {@code serve} with the models it uses when none is configured (the shipped scene models). */
    static ServeProcess withDefaultModels(Path dataDir) throws IOException {
        return new ServeProcess(dataDir, List.of(), List.of(), Map.of(), false, TestPorts.free(), TestPorts.free(), TestPorts.free());
    }

    /** The same {@code serve} again, on the same data and ports (its in-process broker keeps its voters' ports). */
    static ServeProcess again(ServeProcess before, Path dataDir, List<String> jvmArgs, List<String> serveArgs, Map<String, String> env)
            throws IOException {
        return new ServeProcess(dataDir, jvmArgs, serveArgs, env, true, before.kafkaPort, before.controllerPort, before.httpPort);
    }

    private ServeProcess(Path dataDir, List<String> jvmArgs, List<String> serveArgs, Map<String, String> env,
                         boolean tinyModel, int kafkaPort, int controllerPort, int httpPort) throws IOException {
        this.kafkaPort = kafkaPort;
        this.controllerPort = controllerPort;
        this.httpPort = httpPort;
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmArgs);
        cmd.addAll(List.of("-jar", System.getProperty("blip2.jar", "target/blip2-stream.jar"), "serve"));
        cmd.addAll(serveArgs);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        if (tinyModel) {
            pb.environment().put("BLIP2_MODEL", Fixtures.model("blip2-opt-tiny").toString());
        }
        pb.environment().put("BLIP2_DATA_DIR", dataDir.toString());
        pb.environment().put("BLIP2_KAFKA_EMBEDDED_PORT", String.valueOf(kafkaPort));
        pb.environment().put("BLIP2_KAFKA_EMBEDDED_CONTROLLER_PORT", String.valueOf(controllerPort));
        pb.environment().put("BLIP2_HTTP_PORT", String.valueOf(httpPort));
        pb.environment().putAll(env);
        process = pb.start();
        reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    log.append(line).append('\n');
                    if (line.contains("Blip2Service - ready")) {
                        ready.countDown();
                    }
                }
            } catch (IOException e) {
                // process ended
            }
        });
        reader.start();
    }

    /** Whether the service said it is ready within {@code seconds}; false at once when the process ends first. */
    boolean awaitReady(long seconds) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < end) {
            if (ready.await(200, TimeUnit.MILLISECONDS)) {
                return true;
            }
            if (!process.isAlive()) {
                reader.join(5000); // the rest of its output
                return ready.getCount() == 0;
            }
        }
        return false;
    }

    /**
     * Whether the process ended because a port it was given was taken between the test's check and its bind: no
     * fault of the service's, and a reason to start it again on other ports.
     */
    boolean endedOnATakenPort() {
        return !process.isAlive() && log.indexOf("Address already in use") >= 0;
    }

    /** SIGTERM, then up to 60 s for it to exit (killed after that); true when it exited on its own. */
    boolean stop() throws Exception {
        new ProcessBuilder("kill", "-TERM", String.valueOf(process.pid())).start().waitFor();
        boolean exited = process.waitFor(60, TimeUnit.SECONDS);
        if (!exited) {
            process.destroyForcibly();
        }
        reader.join(5000);
        return exited;
    }
}
