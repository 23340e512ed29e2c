package io.blip2stream.cluster;

import com.hazelcast.map.IMap;
import io.blip2stream.engine.VisualPromptCache;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The visual-prompt cache shared by the cluster: a Hazelcast map from image hash and model id to the projected
 * query outputs, float32 little-endian. Bounded per member (LRU) and with a TTL, set in {@link ClusterBootstrap}.
 * Called from inference worker threads (the calls block on the network).
 */
public final class HazelcastVisualPromptCache implements VisualPromptCache {
    private static final Logger LOG = LoggerFactory.getLogger(HazelcastVisualPromptCache.class);
    private final IMap<String, byte[]> map;

    public HazelcastVisualPromptCache(IMap<String, byte[]> map) {
        this.map = map;
    }

    @Override
    public float[] get(String key) {
        try {
            byte[] b = map.get(key);
            if (b == null) {
                return null;
            }
            float[] out = new float[b.length / 4];
            ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
            return out;
        } catch (RuntimeException e) {
            LOG.warn("visual-prompt cache unavailable: {}", e.toString());
            return null;
        }
    }

    @Override
    public void put(String key, float[] visualPrompt) {
        ByteBuffer b = ByteBuffer.allocate(visualPrompt.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(visualPrompt);
        try {
            map.set(key, b.array());
        } catch (RuntimeException e) {
            LOG.warn("visual-prompt cache unavailable: {}", e.toString());
        }
    }
}
