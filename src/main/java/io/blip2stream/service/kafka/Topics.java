package io.blip2stream.service.kafka;

import io.blip2stream.service.config.ServiceConfig;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/** Creates the service's topics where they are absent (at startup, before any verticle runs). */
public final class Topics {
    private static final Logger LOG = LoggerFactory.getLogger(Topics.class);

    private Topics() {}

    public static void ensure(String bootstrapServers, ServiceConfig.Kafka kafka) throws Exception {
        try (Admin admin = Admin.create(new java.util.HashMap<>(kafka.admin(bootstrapServers, Map.of(
                AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000", AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000"))))) {
            Set<String> existing = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            List<NewTopic> missing = new ArrayList<>();
            for (String t : kafka.topics().all()) {
                if (!existing.contains(t)) {
                    missing.add(new NewTopic(t, kafka.partitions(), kafka.replicationFactor())
                            .configs(Map.of("max.message.bytes", String.valueOf(32 << 20))));
                }
            }
            if (!missing.isEmpty()) {
                try {
                    admin.createTopics(missing).all().get(30, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof org.apache.kafka.common.errors.TopicExistsException)) {
                        throw e;
                    }
                }
                LOG.info("created topics {} with {} partitions", missing.stream().map(NewTopic::name).toList(), kafka.partitions());
            }
        }
    }
}
