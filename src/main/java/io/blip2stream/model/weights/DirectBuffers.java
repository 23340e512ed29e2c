package io.blip2stream.model.weights;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;

/**
 * Releases a direct or memory-mapped buffer now rather than when the garbage collector finds it: a checkpoint is
 * loaded through one staging buffer and one mapping per tensor, and left to the collector they add up to the size
 * of the model (22 GB peak RSS for blip2-opt-2.7b, issue 21) or to the JVM's direct-memory limit (PyTorch's
 * {@code OutOfMemoryError: Cannot reserve ... direct buffer memory}). Uses {@code sun.misc.Unsafe.invokeCleaner}
 * (module jdk.unsupported, open to reflection); where that is missing, buffers are left to the collector.
 *
 * <p>Only for a buffer nothing else reads any more: after {@link #free} any access to it crashes the process.
 */
public final class DirectBuffers {
    private static final MethodHandle INVOKE_CLEANER = invokeCleaner();

    private DirectBuffers() {}

    private static MethodHandle invokeCleaner() {
        try {
            Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
            Field f = unsafeClass.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            return MethodHandles.lookup().findVirtual(unsafeClass, "invokeCleaner", MethodType.methodType(void.class, ByteBuffer.class))
                    .bindTo(f.get(null));
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
    }

    /** Whether {@link #free} releases buffers (else it leaves them to the garbage collector). */
    public static boolean releases() {
        return INVOKE_CLEANER != null;
    }

    /**
     * Releases {@code b}'s memory (a direct buffer's allocation, or a mapping) if it is a direct buffer of its own (not
     * a slice or a duplicate, whose memory belongs to another); otherwise does nothing.
     */
    public static void free(ByteBuffer b) {
        if (b == null || !b.isDirect() || INVOKE_CLEANER == null) {
            return;
        }
        try {
            INVOKE_CLEANER.invokeExact(b);
        } catch (IllegalArgumentException e) {
            // a slice or a duplicate: its parent's memory, left to the collector
        } catch (Throwable e) {
            // left to the collector
        }
    }
}
