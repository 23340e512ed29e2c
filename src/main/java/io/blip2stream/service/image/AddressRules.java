package io.blip2stream.service.image;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;

/**
 * Which network addresses an image may be fetched from: public unicast ones only, unless private ones are allowed
 * ({@code images.allow_private_addresses}). What is refused is every address that reaches the service's own host or
 * network rather than the internet: loopback, "this network" (0.0.0.0/8, ::), private (10/8, 172.16/12,
 * 192.168/16, fc00::/7), shared (carrier-grade NAT, 100.64/10), link-local (169.254/16 with the clouds' metadata
 * services, fe80::/10), multicast, broadcast and the reserved ranges (192.0.0/24, 198.18/15 benchmarking,
 * 240/4, the documentation ranges); an IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4,
 * Teredo) is judged by the IPv4 address it carries, so {@code ::ffff:127.0.0.1} is loopback; NAT64's local-use
 * prefix (64:ff9b:1::/48) is not public.
 */
public final class AddressRules {
    private AddressRules() {}

    /** Why {@code a} is not a public unicast address, or null when it is. */
    public static String notPublic(InetAddress a) {
        if (a instanceof Inet6Address v6) {
            byte[] b = v6.getAddress();
            Inet4Address carried = carriedIpv4(b);
            if (carried != null) {
                String why = notPublic4(carried.getAddress());
                return why == null ? null : why + " (carried in the IPv6 address " + v6.getHostAddress() + ")";
            }
            return notPublic6(v6, b);
        }
        return notPublic4(a.getAddress());
    }

    private static String notPublic4(byte[] b) {
        int a0 = b[0] & 0xff;
        int a1 = b[1] & 0xff;
        int a2 = b[2] & 0xff;
        if (a0 == 0) {
            return "a 'this network' address (0.0.0.0/8)";
        }
        if (a0 == 127) {
            return "a loopback address";
        }
        if (a0 == 10 || a0 == 172 && (a1 & 0xf0) == 16 || a0 == 192 && a1 == 168) {
            return "a private address";
        }
        if (a0 == 100 && (a1 & 0xc0) == 64) {
            return "a shared (carrier-grade NAT) address";
        }
        if (a0 == 169 && a1 == 254) {
            return "a link-local address (cloud metadata services live there)";
        }
        if (a0 == 192 && a1 == 0 && a2 == 0) {
            return "an IETF protocol address (192.0.0.0/24)";
        }
        if (a0 == 192 && a1 == 0 && a2 == 2 || a0 == 198 && a1 == 51 && a2 == 100 || a0 == 203 && a1 == 0 && a2 == 113) {
            return "a documentation address";
        }
        if (a0 == 198 && (a1 & 0xfe) == 18) {
            return "a benchmarking address (198.18.0.0/15)";
        }
        if (a0 >= 224 && a0 < 240) {
            return "a multicast address";
        }
        if (a0 >= 240) {
            return "a reserved or broadcast address";
        }
        return null;
    }

    private static String notPublic6(Inet6Address v6, byte[] b) {
        if (v6.isAnyLocalAddress()) {
            return "the unspecified address (::)";
        }
        if (v6.isLoopbackAddress()) {
            return "a loopback address";
        }
        int b0 = b[0] & 0xff;
        int b1 = b[1] & 0xff;
        if (b0 == 0xfe && (b1 & 0xc0) == 0x80) {
            return "a link-local address";
        }
        if (b0 == 0xfe && (b1 & 0xc0) == 0xc0) {
            return "a site-local address";
        }
        if ((b0 & 0xfe) == 0xfc) {
            return "a private (unique local) address";
        }
        if (b0 == 0xff) {
            return "a multicast address";
        }
        if (b0 == 0x20 && b1 == 0x01 && (b[2] & 0xff) == 0x0d && (b[3] & 0xff) == 0xb8) {
            return "a documentation address (2001:db8::/32)";
        }
        if (b0 == 0x01 && b1 == 0 && b[2] == 0 && b[3] == 0 && b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 0) {
            return "a discard address (100::/64)";
        }
        if ((b0 & 0xe0) != 0x20) {
            return "an address outside the global unicast range (2000::/3)";
        }
        return null;
    }

    /**
     * The IPv4 address an IPv6 one carries: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64
     * (64:ff9b::/96 and 64:ff9b:1::/48), 6to4 (2002::/16) and Teredo (2001::/32, the client's address inverted).
     */
    static Inet4Address carriedIpv4(byte[] b) {
        boolean zero80 = true;
        for (int i = 0; i < 10; i++) {
            zero80 &= b[i] == 0;
        }
        if (zero80 && ((b[10] & 0xff) == 0xff && (b[11] & 0xff) == 0xff || b[10] == 0 && b[11] == 0 && !allZero(b, 12, 16))) {
            return v4(b[12], b[13], b[14], b[15]);
        }
        if ((b[0] & 0xff) == 0x00 && (b[1] & 0xff) == 0x64 && (b[2] & 0xff) == 0xff && (b[3] & 0xff) == 0x9b) {
            // 64:ff9b::/96 carries it in the last four bytes, the rest zero; any other layout (64:ff9b:1::/48, local
            // use, carries it elsewhere) is judged as 0.0.0.0: not public
            return allZero(b, 4, 12) ? v4(b[12], b[13], b[14], b[15]) : v4((byte) 0, (byte) 0, (byte) 0, (byte) 0);
        }
        if ((b[0] & 0xff) == 0x20 && (b[1] & 0xff) == 0x02) {
            return v4(b[2], b[3], b[4], b[5]);
        }
        if ((b[0] & 0xff) == 0x20 && (b[1] & 0xff) == 0x01 && b[2] == 0 && b[3] == 0) {
            return v4((byte) ~b[12], (byte) ~b[13], (byte) ~b[14], (byte) ~b[15]);
        }
        return null;
    }

    private static boolean allZero(byte[] b, int from, int to) {
        for (int i = from; i < to; i++) {
            if (b[i] != 0) {
                return false;
            }
        }
        return true;
    }

    private static Inet4Address v4(byte a, byte b, byte c, byte d) {
        try {
            return (Inet4Address) InetAddress.getByAddress(new byte[] {a, b, c, d});
        } catch (java.net.UnknownHostException e) {
            throw new IllegalStateException(e); // four bytes are always an address
        }
    }
}
