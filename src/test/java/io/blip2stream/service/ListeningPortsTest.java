package io.blip2stream.service;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 20, item 1: a node configured on loopback (cluster.host and http.host 127.0.0.1, the in-process broker)
 * listens on loopback only: every listening socket of the process, read from the kernel's own tables, is bound to
 * 127.0.0.1 or ::1, none to every interface. Before, Hazelcast listened on *:5701 whatever cluster.host said.
 */
@Tag("broker")
class ListeningPortsTest {
    @TempDir
    Path tmp;

    /** A listening TCP socket of this process: its local address as the kernel has it. */
    record Listener(String address, int port) {}

    @Test
    void everyPortOfALoopbackNodeIsBoundToLoopback() throws Exception {
        try (ServiceHarness h = new ServiceHarness(tmp.resolve("data"), Map.of())) {
            List<Listener> mine = listeners();
            assertTrue(mine.stream().anyMatch(l -> l.port() == h.service.httpPort()), "HTTP is among them: " + mine);
            assertTrue(mine.size() >= 4, "HTTP, Hazelcast, the event bus and the broker at least: " + mine);
            for (Listener l : mine) {
                assertTrue(l.address().equals("127.0.0.1") || l.address().equals("::1") || l.address().equals("::ffff:127.0.0.1"),
                        "port " + l.port() + " is bound to " + l.address() + ", not loopback: " + mine);
            }
        }
    }

    /** The LISTEN sockets whose inodes this process holds (/proc/self/fd), with their addresses (/proc/net/tcp, tcp6). */
    static List<Listener> listeners() throws IOException {
        Set<String> inodes = new HashSet<>();
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                try {
                    String target = Files.readSymbolicLink(fd).toString();
                    if (target.startsWith("socket:[")) {
                        inodes.add(target.substring(8, target.length() - 1));
                    }
                } catch (IOException e) {
                    // closed meanwhile
                }
            }
        }
        List<Listener> out = new ArrayList<>();
        for (String table : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            List<String> lines = Files.readAllLines(Path.of(table));
            for (String line : lines.subList(1, lines.size())) {
                String[] f = line.trim().split("\\s+");
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                if (!f[3].equals("0A") || !inodes.contains(f[9])) {
                    continue; // not LISTEN, or not this process's
                }
                String[] local = f[1].split(":");
                out.add(new Listener(address(local[0]), Integer.parseInt(local[1], 16)));
            }
        }
        return out;
    }

    /** /proc/net's hex address (little-endian 32-bit words) as text. */
    static String address(String hex) throws IOException {
        byte[] b = new byte[hex.length() / 2];
        for (int w = 0; w < b.length / 4; w++) {
            for (int i = 0; i < 4; i++) {
                b[w * 4 + i] = (byte) Integer.parseInt(hex.substring(w * 8 + (3 - i) * 2, w * 8 + (3 - i) * 2 + 2), 16);
            }
        }
        String a = java.net.InetAddress.getByAddress(b).getHostAddress();
        if (a.startsWith("0:0:0:0:0:ffff:")) {
            return "::ffff:" + java.net.InetAddress.getByAddress(java.util.Arrays.copyOfRange(b, 12, 16)).getHostAddress();
        }
        return a.equals("0:0:0:0:0:0:0:1") ? "::1" : a.equals("0:0:0:0:0:0:0:0") ? "::" : a;
    }
}
