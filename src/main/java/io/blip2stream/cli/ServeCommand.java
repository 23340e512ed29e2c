package io.blip2stream.cli;

import io.blip2stream.service.Blip2Service;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** The {@code serve} command: runs the streaming service (Kafka in and out, HTTP, WebSocket, the cluster). */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Run the streaming service: Kafka in, captions, answers, matches and embeddings out.",
                "Configured from conf/application.yaml, then --config FILE, then BLIP2_* environment variables (see README)."})
final class ServeCommand implements Callable<Integer> {
    @Option(names = "--config", paramLabel = "FILE", description = "a YAML file overriding conf/application.yaml")
    Path config;

    @Option(names = "--model", paramLabel = "DIR", description = "the model folder (overrides BLIP2_MODEL)")
    Path model;

    @Override
    public Integer call() throws Exception {
        Map<String, String> overrides = new HashMap<>();
        if (model != null) {
            overrides.put("model.path", model.toString());
        }
        ServiceConfig c;
        try {
            c = ConfigLoader.load(config, System.getenv(), overrides);
        } catch (IllegalArgumentException e) {
            throw new Main.UserError(e.getMessage());
        }
        Blip2Service service = new Blip2Service(c);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            service.stop(); // SIGTERM: drain, commit, close
            stopped.countDown();
        }, "blip2-shutdown"));
        try {
            service.start();
        } catch (IllegalArgumentException e) {
            service.stop();
            throw new Main.UserError(e.getMessage());
        }
        stopped.await();
        return 0;
    }
}
