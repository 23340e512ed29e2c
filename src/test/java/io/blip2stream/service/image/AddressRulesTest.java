package io.blip2stream.service.image;

import org.junit.jupiter.api.Test;

import java.net.InetAddress;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

/** Which addresses count as public: every range an SSRF reaches the service's own network through is refused. */
class AddressRulesTest {
    @Test
    void theAddressesOfTheServicesOwnHostAndNetworkAreNotPublic() throws Exception {
        for (String a : new String[] {"127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255",
                "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255", "169.254.169.254",
                "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9", "224.0.0.1",
                "239.255.255.250", "240.0.0.1", "255.255.255.255",
                "::", "::1", "fe80::1", "fec0::1", "fc00::1", "fd00:ec2::254", "ff02::1", "2001:db8::1", "100::1",
                // IPv4 carried in IPv6: judged by the IPv4 address
                "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::10.0.0.1", "64:ff9b::a00:1", "64:ff9b:1::a9fe:a9fe",
                // NAT64's local-use /48 carries the IPv4 address elsewhere: not public, whatever its last bytes say
                "64:ff9b:1:a00:1:0:808:808", "64:ff9b:0:0:0:1:808:808",
                "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe"}) {
            assertNotNull(AddressRules.notPublic(InetAddress.getByName(a)), a + " is not public");
        }
    }

    @Test
    void publicAddressesAre() throws Exception {
        for (String a : new String[] {"93.184.216.34", "8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "100.63.255.255",
                "100.128.0.1", "169.253.0.1", "192.169.0.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
                "::ffff:8.8.8.8", "2002:0808:0808::"}) {
            assertNull(AddressRules.notPublic(InetAddress.getByName(a)), a + " is public");
        }
    }
}
