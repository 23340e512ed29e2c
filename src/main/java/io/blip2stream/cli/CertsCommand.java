package io.blip2stream.cli;

import io.blip2stream.cluster.ClusterCertificates;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** The cluster's CA and its nodes' certificates for the event bus's mutual TLS ({@code cluster.tls_dir}). */
@Command(name = "certs", mixinStandardHelpOptions = true,
        description = {"Make the cluster's CA and a certificate for each node, for the event bus's mutual TLS (cluster.tls_dir).",
                "It uses the JDK's keytool and writes OUT/ca.pem, OUT/ca-key.p12 (keep it off the nodes) and a folder OUT/NODE per "
                        + "node (ca.pem, node.pem, node-key.pem) to give that node as BLIP2_CLUSTER_TLS_DIR.",
                "Run again on the same folder, it keeps the CA and the nodes whose certificate it signed with more than 30 days "
                        + "left, and signs the others (new nodes, certificates near their end); --renew signs the named nodes again in any case."})
final class CertsCommand implements Callable<Integer> {
    @Option(names = "--out", paramLabel = "DIR", defaultValue = "certs", description = "where to write them (default: ${DEFAULT-VALUE})")
    Path out;

    @Option(names = "--nodes", paramLabel = "N", defaultValue = "2",
            description = "how many nodes, named node-1 ... node-N (default: ${DEFAULT-VALUE}); ignored when --name is given")
    int nodes;

    @Option(names = "--name", paramLabel = "NAME", description = "a node's name (its folder and its certificate's CN); repeat for several")
    List<String> names;

    @Option(names = "--days", paramLabel = "DAYS", defaultValue = "825",
            description = "how long the node certificates are valid (default: ${DEFAULT-VALUE}; the CA at least 3650)")
    int days;

    @Option(names = "--renew", description = "sign the nodes' certificates again even where they are current")
    boolean renew;

    @Override
    public Integer call() throws Exception {
        List<String> nodeNames = new ArrayList<>();
        if (names != null && !names.isEmpty()) {
            nodeNames.addAll(names);
        } else {
            if (nodes < 1 || nodes > 1000) {
                throw new Main.UserError("--nodes must be between 1 and 1000");
            }
            for (int i = 1; i <= nodes; i++) {
                nodeNames.add("node-" + i);
            }
        }
        ClusterCertificates.Made made;
        try {
            made = ClusterCertificates.make(out, nodeNames, days, renew);
        } catch (IllegalArgumentException e) {
            throw new Main.UserError(e.getMessage());
        }
        System.out.println((made.newCa() ? "made the CA " : "kept the CA ") + made.ca()
                + " (its key: " + out.resolve("ca-key.p12") + ", keep it off the nodes)");
        for (Path p : made.made()) {
            System.out.println("made " + p + ": BLIP2_CLUSTER_TLS_DIR=" + p.toAbsolutePath());
        }
        for (Path p : made.kept()) {
            System.out.println("kept " + p);
        }
        return 0;
    }
}
