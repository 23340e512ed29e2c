package io.blip2stream.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.loadtest.KafkaLoadGenerator;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** The {@code load} command: loads the running service (Kafka, WebSocket, or in process) and reports throughput and latency. */
@Command(name = "load", mixinStandardHelpOptions = true,
        description = {"Load the running service through Kafka and report throughput and end-to-end latency percentiles.",
                "Closed loop with --concurrency, or open loop at --rate requests per second; --concurrency 0 --rate 0 sends all at once.",
                "--in-process --model DIR: the same requests straight into an inference worker's batcher (no Kafka): the workers' raw throughput.",
                "Scenario files hold options, one per line (# comments): load @load-tests/scenarios/NAME.args."})
final class LoadCommand implements Callable<Integer> {
    @Option(names = "--requests", defaultValue = "200", paramLabel = "N", description = "requests to count (default 200)")
    int requests;

    @Option(names = "--warmup", defaultValue = "0", paramLabel = "N",
            description = "first send N requests the same way and do not count them (the path warm: JIT, connections)")
    int warmup;

    @Option(names = "--concurrency", defaultValue = "8", description = "requests outstanding at once (0: open loop)")
    int concurrency;

    @Option(names = "--rate", defaultValue = "0", description = "open loop: requests per second (0: as fast as possible)")
    double rate;

    @Option(names = "--task", defaultValue = "caption", paramLabel = "TASK", description = "caption (default), vqa, match or embed")
    String task;

    @Option(names = "--image", required = true, paramLabel = "FILE", description = "the image every request sends")
    Path image;

    @Option(names = "--question", paramLabel = "TEXT", description = "vqa: the question every request asks")
    String question;

    @Option(names = "--text", paramLabel = "T", description = "match or embed: a text; repeat for several")
    List<String> texts;

    @Option(names = "--params", paramLabel = "JSON", defaultValue = "{\"max_new_tokens\":12}",
            description = "generation parameters, transformers' names (default '{\"max_new_tokens\":12}')")
    String params;

    @Option(names = "--raw", description = "send the raw form (image bytes with blip2-* headers)")
    boolean raw;

    @Option(names = "--bootstrap-servers", paramLabel = "HOST:PORT", defaultValue = "${env:BLIP2_KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}",
            description = "the Kafka brokers, host:port[,...] (default: BLIP2_KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)")
    String bootstrap;

    @Option(names = "--timeout", defaultValue = "600", description = "seconds to wait for the last answer")
    int timeout;

    @Option(names = "--json", description = "print the report as one JSON object")
    boolean json;

    @Option(names = "--websocket", paramLabel = "URL",
            description = "load a WebSocket instead of Kafka (e.g. ws://localhost:8080/v1/stream): --concurrency clients, "
                    + "each a request after the other; reports time to first token and between tokens")
    String websocket;

    @Option(names = "--in-process", description = "no service: load a model here and feed its batcher directly")
    boolean inProcess;

    @Option(names = "--model", paramLabel = "DIR", description = "--in-process: the checkpoint (default: BLIP2_MODEL)",
            defaultValue = "${env:BLIP2_MODEL}")
    Path model;

    @Option(names = "--engine", paramLabel = "ENGINE", defaultValue = "${env:BLIP2_ENGINE:-tensorflow}",
            description = "--in-process: tensorflow (default) or pytorch")
    String engine;

    @Option(names = "--token", description = "a bearer token for --websocket")
    String token;

    @Override
    public Integer call() throws Exception {
        if (!Files.isRegularFile(image)) {
            throw new Main.UserError("image file " + image + " does not exist");
        }
        if (warmup < 0) {
            throw new Main.UserError("--warmup must be 0 or more, not " + warmup);
        }
        if (warmup > 0 && websocket != null) {
            throw new Main.UserError("--warmup is for loads through Kafka and --in-process; a --websocket load measures every request");
        }
        byte[] img = Files.readAllBytes(image);
        ObjectMapper mapper = new ObjectMapper();
        var paramsNode = UsageErrors.jsonObject("--params", params, "{\"max_new_tokens\":12}");
        if (websocket != null) {
            ObjectNode f = mapper.createObjectNode().put("type", "generate").put("task", task)
                    .put("image", Base64.getEncoder().encodeToString(img));
            if (question != null) {
                f.put("question", question);
            }
            f.set("params", paramsNode);
            var r = io.blip2stream.loadtest.WebSocketLoadGenerator.run(java.net.URI.create(websocket), token,
                    Math.max(1, concurrency), requests, f, timeout * 1000L);
            if (json) {
                System.out.println(mapper.writeValueAsString(r));
            } else {
                System.out.printf(Locale.ROOT, "%d requests over %d WebSocket clients, %d done, %d errors in %.2f s: %.2f requests/s%n",
                        r.requests(), Math.max(1, concurrency), r.done(), r.errors(), r.seconds(), r.throughput());
                System.out.printf(Locale.ROOT, "client-side ms: first token p50 %.1f p99 %.1f; between tokens p50 %.2f p99 %.2f; done p50 %.1f p99 %.1f%n",
                        r.firstTokenP50(), r.firstTokenP99(), r.gapP50(), r.gapP99(), r.doneP50(), r.doneP99());
                System.out.printf(Locale.ROOT, "server-side ms (in-process, median): prefill %.2f, decode per token %.2f%n",
                        r.serverPrefillP50(), r.serverPerTokenP50());
            }
            return r.done() == requests ? 0 : 1;
        }
        ServiceConfig config = ConfigLoader.load(null, System.getenv(), Map.of());
        if (inProcess) {
            return inProcess(config, img, mapper, paramsNode);
        }
        KafkaReach.check(bootstrap, Math.min(timeout, 30)); // one line, soon, when there is no broker
        ServiceConfig.Topics t = config.kafka().topics();
        KafkaLoadGenerator.Plan plan = new KafkaLoadGenerator.Plan(bootstrap, t.requests(),
                List.of(t.captions(), t.answers(), t.matches(), t.embeddings(), t.deadLetter()), t.deadLetter(),
                requests, concurrency, rate, timeout * 1000L, warmup);
        KafkaLoadGenerator.Report r = KafkaLoadGenerator.run(plan, (i, id) -> {
            if (raw) {
                ProducerRecord<String, byte[]> rec = new ProducerRecord<>(t.requests(), id, img);
                rec.headers().add("blip2-id", id.getBytes(StandardCharsets.UTF_8));
                rec.headers().add("blip2-task", task.getBytes(StandardCharsets.UTF_8));
                if (question != null) {
                    rec.headers().add("blip2-question", question.getBytes(StandardCharsets.UTF_8));
                }
                rec.headers().add("blip2-params", params.getBytes(StandardCharsets.UTF_8));
                return rec;
            }
            return new ProducerRecord<>(t.requests(), id, requestJson(mapper, id, img, paramsNode));
        });
        if (json) {
            System.out.println(mapper.writeValueAsString(r));
        } else {
            System.out.printf(Locale.ROOT, "%d sent, %d answered (%d dead letters) in %.2f s: %.2f requests/s%n",
                    r.sent(), r.answered(), r.deadLetters(), r.seconds(), r.throughput());
            System.out.printf(Locale.ROOT, "end-to-end latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f%n", r.p50(), r.p90(), r.p99(), r.max());
            System.out.printf(Locale.ROOT, "server-side ms (median): total %.1f, queued %.1f%n", r.serverTotalP50(), r.serverQueuedP50());
        }
        return r.answered() == r.sent() ? 0 : 1;
    }

    /** The workers' raw throughput: requests decoded from the JSON the Kafka load sends, into one batcher. */
    private int inProcess(ServiceConfig config, byte[] img, ObjectMapper mapper, com.fasterxml.jackson.databind.JsonNode paramsNode)
            throws Exception {
        if (model == null || !Files.isDirectory(model)) {
            throw new Main.UserError("--in-process needs --model DIR (or BLIP2_MODEL)");
        }
        io.blip2stream.engine.Engines.Kind kind;
        try {
            kind = io.blip2stream.engine.Engines.Kind.parse(engine);
        } catch (IllegalArgumentException e) {
            throw new Main.UserError(e.getMessage());
        }
        var texts = io.blip2stream.engine.RequestTexts.load(model, null, config.inference().maxPromptTokens());
        var decoder = new io.blip2stream.service.protocol.RequestDecoder(config.inference(), config.limits(), texts);
        var limits = new io.blip2stream.engine.InferenceRunner.Limits(config.inference().maxPromptTokens(),
                config.limits().maxImagePixels(), config.inference().stepDelayMs());
        try (texts; var runner = io.blip2stream.engine.InferenceRunner.load(model, null, kind, "cpu", limits)) {
            var r = io.blip2stream.loadtest.InProcessLoadGenerator.run(runner, config.inference().maxBatchSize(),
                    config.inference().maxBatchWaitMs(), config.inference().maxJoinWaitMs(), config.inference().warmupRequests(),
                    warmup, requests, concurrency, rate,
                    id -> decoder.validate(decoder.fromJson(requestJson(mapper, id, img, paramsNode), null), System.nanoTime()),
                    timeout * 1000L);
            if (json) {
                System.out.println(mapper.writeValueAsString(r));
            } else {
                System.out.printf(Locale.ROOT, "in-process (%s, batch %d, wait %d ms): %d sent, %d answered (%d errors) in %.2f s: %.2f requests/s, %.1f tokens/s%n",
                        kind.djlName(), config.inference().maxBatchSize(), config.inference().maxBatchWaitMs(),
                        r.sent(), r.answered(), r.errors(), r.seconds(), r.throughput(), r.tokensPerSecond());
                System.out.printf(Locale.ROOT, "latency ms (submit to outcome): p50 %.1f  p90 %.1f  p99 %.1f  max %.1f%n",
                        r.p50(), r.p90(), r.p99(), r.max());
            }
            return r.answered() == r.sent() && r.errors() == 0 ? 0 : 1;
        }
    }

    /** The JSON request record the service reads from its input topic. */
    private byte[] requestJson(ObjectMapper mapper, String id, byte[] img, com.fasterxml.jackson.databind.JsonNode paramsNode) {
        ObjectNode o = mapper.createObjectNode().put("id", id).put("task", task).put("image", Base64.getEncoder().encodeToString(img));
        if (question != null) {
            o.put("question", question);
        }
        if (texts != null) {
            texts.forEach(o.putArray("texts")::add);
        }
        o.set("params", paramsNode);
        try {
            return mapper.writeValueAsBytes(o);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
