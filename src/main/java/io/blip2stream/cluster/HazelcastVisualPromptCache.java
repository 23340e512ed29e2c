package io.blip2stream.cluster;

import com.hazelcast.map.IMap;
import io.blip2stream.engine.VisualPromptCache;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The visual-prompt cache shared by the cluster: a Hazelcast map from a keyed hash of the image hash and model id
 * to the projected query outputs (float32 little-endian), sealed under the cluster's key ({@link ClusterCipher}):
 * a foreign member learns no image hash and cannot plant a visual prompt. Bounded per member (LRU) and with a TTL, set in {@link ClusterBootstrap}.
 * Called from inference worker threads (the calls block on the network).
 */
public final class HazelcastVisualPromptCache implements VisualPromptCache {
    private static final Logger LOG = LoggerFactory.getLogger(HazelcastVisualPromptCache.class);
    private final IMap<String, byte[]> map;
    private final ClusterCipher cipher;

    /** @param cipher seals the values and hides the keys (image hashes) under the cluster's key */
    public HazelcastVisualPromptCache(IMap<String, byte[]> map, ClusterCipher cipher) {
        this.map = map;
        this.cipher = cipher;
    }

    @Override
    public float[] get(String key) {
        try {
            String hidden = cipher.hashKey(key);
            byte[] b = cipher.open(ClusterBootstrap.VISUAL_PROMPTS_MAP, hidden, map.get(hidden));
            if (b == null || b.length % 4 != 0) {
                return null; // absent, or not ours (a foreign member's, damaged): computed again
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
            String hidden = cipher.hashKey(key);
            map.set(hidden, cipher.seal(ClusterBootstrap.VISUAL_PROMPTS_MAP, hidden, b.array()));
        } catch (RuntimeException e) {
            LOG.warn("visual-prompt cache unavailable: {}", e.toString());
        }
    }
}
