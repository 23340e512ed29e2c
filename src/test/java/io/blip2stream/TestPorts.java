package io.blip2stream;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Ports for servers that a test starts in another process (serve, Hazelcast members). They come from below the
 * kernel's ephemeral range: a port taken from that range (a {@code ServerSocket(0)}) can be handed, before the other
 * process binds it, to an outgoing connection's source port (Kafka clients, Hazelcast members connect all the
 * time), and the server then fails with "Address already in use" (ExactlyOnceIT in CI, 2026-11-28). A port is never
 * handed out twice by one JVM, and is checked free when handed out.
 */
public final class TestPorts {
    private static final int LOWEST = 10_000;
    private static final Set<Integer> GIVEN = new HashSet<>();

    private TestPorts() {}

    /** A port free now, outside the ephemeral range (inside it only where that range leaves no room below). */
    public static synchronized int free() throws IOException {
        int below = ephemeralLow();
        if (below - LOWEST < 1_000) {
            try (ServerSocket s = new ServerSocket(0)) {
                return s.getLocalPort();
            }
        }
        for (int attempt = 0; attempt < 1_000; attempt++) {
            int port = ThreadLocalRandom.current().nextInt(LOWEST, below);
            if (!GIVEN.contains(port) && bindable(port)) {
                GIVEN.add(port);
                return port;
            }
        }
        throw new IOException("no free port between " + LOWEST + " and " + below);
    }

    private static boolean bindable(int port) {
        try (ServerSocket any = new ServerSocket()) {
            any.bind(new InetSocketAddress(port));
        } catch (IOException e) {
            return false;
        }
        try (ServerSocket loopback = new ServerSocket()) {
            loopback.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** The low end of the kernel's ephemeral port range (Linux), 32768 where it cannot be read. */
    private static int ephemeralLow() {
        try {
            // by lines: Files.readString trusts the size procfs reports and returned "3" of "32768\t60999", which sent
            // every port into the ephemeral range (the bind failures this class exists to prevent)
            String range = Files.readAllLines(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).get(0).trim();
            return Integer.parseInt(range.split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return 32_768;
        }
    }
}
