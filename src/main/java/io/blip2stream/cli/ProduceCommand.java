package io.blip2stream.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.service.config.ConfigLoader;
import io.blip2stream.service.config.ServiceConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Callable;

/** The {@code produce} command: sends one request to the service's input topic and, with {@code --wait}, prints its answer. */
@Command(name = "produce", mixinStandardHelpOptions = true,
        description = {"Send one request to the service's input topic and, with --wait, print its result (or dead letter).",
                "A small client for trying the service without kcat."})
final class ProduceCommand implements Callable<Integer> {
    @Option(names = "--task", required = true, paramLabel = "TASK", description = "caption, vqa, match or embed")
    String task;

    @Option(names = "--image", paramLabel = "FILE", description = "the image, a PNG, JPEG, BMP or GIF file, sent inline")
    Path image;

    @Option(names = "--image-url", paramLabel = "URL", description = "the image by reference instead: https:, file: or "
            + "data: (the service fetches it within its images.* rules; see README, \"Images by reference\")")
    String imageUrl;

    @Option(names = "--question", paramLabel = "TEXT", description = "vqa: the question (the service wraps it in the "
            + "model's template, \"Question: {q} Answer:\" for OPT)")
    String question;

    @Option(names = "--prompt", paramLabel = "TEXT", description = "caption: text the caption continues, such as \"a photo of\"")
    String prompt;

    @Option(names = "--text", paramLabel = "T", description = "match or embed: a text; repeat for several")
    List<String> texts;

    @Option(names = "--params", paramLabel = "JSON", description = "generation parameters, e.g. '{\"max_new_tokens\":12}'")
    String params;

    @Option(names = "--stream", description = "ask for token records")
    boolean stream;

    @Option(names = "--raw", description = "send the image bytes as the value, the fields as blip2-* headers")
    boolean raw;

    @Option(names = "--id", paramLabel = "ID", description = "the request id (default: a new UUID)")
    String id;

    @Option(names = "--bootstrap-servers", paramLabel = "HOST:PORT", defaultValue = "${env:BLIP2_KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}",
            description = "the Kafka brokers, host:port[,...] (default: BLIP2_KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)")
    String bootstrap;

    @Option(names = "--wait", description = "wait for the result and print it")
    boolean await;

    @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "120", description = "seconds to wait for the broker, the send and "
            + "the result (default 120)")
    int timeout;

    @Override
    public Integer call() throws Exception {
        ServiceConfig.Topics topics = ConfigLoader.load(null, System.getenv(), Map.of()).kafka().topics();
        String rid = id == null ? UUID.randomUUID().toString() : id;
        UsageErrors.oneOf("--task", task, List.of("caption", "vqa", "match", "embed"));
        JsonNode paramsNode = params == null ? null : UsageErrors.jsonObject("--params", params, "{\"max_new_tokens\":12}");
        if (image != null && imageUrl != null) {
            throw new Main.UserError("give --image or --image-url, not both");
        }
        byte[] img = null;
        if (image != null) {
            if (!Files.isRegularFile(image)) {
                throw new Main.UserError("image file " + image + " does not exist");
            }
            img = Files.readAllBytes(image);
        }
        ObjectMapper json = new ObjectMapper();
        ProducerRecord<String, byte[]> record;
        if (raw) {
            if (img == null && imageUrl == null) {
                throw new Main.UserError("--raw needs --image or --image-url");
            }
            record = new ProducerRecord<>(topics.requests(), rid, img == null ? new byte[0] : img);
            addHeader(record, "blip2-image-url", imageUrl);
            record.headers().add("blip2-task", task.getBytes(StandardCharsets.UTF_8));
            record.headers().add("blip2-id", rid.getBytes(StandardCharsets.UTF_8)); // the key is for partitioning, not an id
            addHeader(record, "blip2-question", question);
            addHeader(record, "blip2-prompt", prompt);
            addHeader(record, "blip2-params", params);
            if (texts != null) {
                addHeader(record, "blip2-texts", json.writeValueAsString(texts));
            }
            if (stream) {
                addHeader(record, "blip2-stream", "true");
            }
        } else {
            ObjectNode o = json.createObjectNode();
            o.put("id", rid);
            o.put("task", task);
            if (img != null) {
                o.put("image", Base64.getEncoder().encodeToString(img));
            }
            if (imageUrl != null) {
                o.put("image_url", imageUrl);
            }
            if (question != null) {
                o.put("question", question);
            }
            if (prompt != null) {
                o.put("prompt", prompt);
            }
            if (texts != null) {
                texts.forEach(o.putArray("texts")::add);
            }
            if (params != null) {
                o.set("params", paramsNode);
            }
            if (stream) {
                o.put("stream", true);
            }
            record = new ProducerRecord<>(topics.requests(), rid, json.writeValueAsBytes(o));
        }
        KafkaReach.check(bootstrap, timeout); // one line, within --timeout, when there is no broker
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        List<String> watch = List.of(topics.captions(), topics.answers(), topics.matches(), topics.embeddings(),
                topics.deadLetter(), topics.tokens());
        KafkaConsumer<String, byte[]> consumer = null;
        if (await) {
            // start at the end of the output topics before sending, so the result cannot be missed
            Map<String, Object> c = new HashMap<>();
            c.put("bootstrap.servers", bootstrap);
            c.put("group.id", "blip2-produce-" + UUID.randomUUID());
            c.put("enable.auto.commit", "false");
            consumer = new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer());
            List<TopicPartition> tps = new ArrayList<>();
            for (String t : watch) {
                consumer.partitionsFor(t, Duration.ofSeconds(timeout)).forEach(p -> tps.add(new TopicPartition(p.topic(), p.partition())));
            }
            consumer.assign(tps);
            consumer.seekToEnd(tps);
            tps.forEach(consumer::position);
        }
        long sendMs = timeout * 1000L;
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(Map.of("bootstrap.servers", bootstrap, "acks", "all",
                "max.request.size", String.valueOf(32 << 20), "max.block.ms", String.valueOf(sendMs),
                "request.timeout.ms", String.valueOf(Math.min(sendMs, 30_000)), "delivery.timeout.ms", String.valueOf(Math.max(sendMs, 31_000))),
                new StringSerializer(), new ByteArraySerializer())) {
            var meta = producer.send(record).get(timeout, java.util.concurrent.TimeUnit.SECONDS);
            System.err.println("sent " + rid + " to " + meta.topic() + "-" + meta.partition() + "@" + meta.offset());
        }
        if (consumer == null) {
            out.println(rid);
            return 0;
        }
        try (KafkaConsumer<String, byte[]> cons = consumer) {
            long end = System.currentTimeMillis() + timeout * 1000L;
            while (System.currentTimeMillis() < end) {
                for (ConsumerRecord<String, byte[]> r : cons.poll(Duration.ofMillis(200))) {
                    if (!rid.equals(r.key())) {
                        continue;
                    }
                    String value = new String(r.value(), StandardCharsets.UTF_8);
                    if (r.topic().equals(topics.tokens())) {
                        JsonNode t = json.readTree(value);
                        System.err.print(t.get("text").asText());
                        continue;
                    }
                    if (r.topic().equals(topics.deadLetter())) {
                        var code = r.headers().lastHeader("blip2-error-code");
                        var msg = r.headers().lastHeader("blip2-error-message");
                        out.println("{\"dead_letter\":true,\"code\":" + json.writeValueAsString(code == null ? null : new String(code.value(), StandardCharsets.UTF_8))
                                + ",\"message\":" + json.writeValueAsString(msg == null ? null : new String(msg.value(), StandardCharsets.UTF_8)) + "}");
                        return 1;
                    }
                    if (stream) {
                        System.err.println();
                    }
                    out.println(value);
                    return 0;
                }
            }
        }
        throw new Main.UserError("no result for " + rid + " within " + timeout + " s");
    }

    private static void addHeader(ProducerRecord<String, byte[]> r, String name, String value) {
        if (value != null) {
            r.headers().add(name, value.getBytes(StandardCharsets.UTF_8));
        }
    }
}
