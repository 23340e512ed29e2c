package io.blip2stream.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.blip2stream.engine.RequestError;
import io.blip2stream.service.protocol.JsonInput;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParameterException;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;

/**
 * What went wrong with a command line, said in one line that names the command, option or value at fault and, for a
 * misspelling, the name that was probably meant ("did you mean"), instead of a parser's or a library's words.
 */
final class UsageErrors {
    private UsageErrors() {}

    /**
     * The line for a parse error. An unknown command or option is reported before anything else picocli found (a
     * missing required option is most often the misspelt one), with the nearest name.
     */
    static String explain(ParameterException ex, String[] args) {
        String unknown = unknownName(ex.getCommandLine(), args);
        if (unknown != null) {
            return unknown;
        }
        String m = ex.getMessage() == null ? ex.getClass().getSimpleName() : ex.getMessage().replace('\n', ' ');
        return m + " (see " + helpOf(ex.getCommandLine().getCommandSpec()) + ")";
    }

    /** The first unknown command or option in {@code args}, walked as picocli walks them, or null. */
    private static String unknownName(CommandLine at, String[] given) {
        CommandSpec spec = at.getCommandSpec().root();
        boolean valueNext = false;
        boolean help = false;
        for (String a : expanded(given)) {
            if (valueNext) {
                valueNext = false;
                continue;
            }
            if (a.equals("--")) {
                return null; // the rest are positional
            }
            if (a.startsWith("-") && a.length() > 1 && !isNumber(a)) {
                int eq = a.indexOf('=');
                String name = eq > 0 ? a.substring(0, eq) : a;
                OptionSpec o = spec.findOption(name);
                if (o == null && !a.startsWith("--") && a.length() > 2) {
                    o = spec.findOption(a.substring(0, 2)); // -Kvalue
                    if (o != null) {
                        continue;
                    }
                }
                if (o == null) {
                    List<String> names = new ArrayList<>();
                    spec.options().stream().filter(x -> !x.hidden()).forEach(x -> names.addAll(List.of(x.names())));
                    return "unknown option '" + name + "'" + forCommand(spec) + didYouMean(name, names) + " (see " + helpOf(spec) + ")";
                }
                valueNext = eq < 0 && o.arity().min() > 0;
                continue;
            }
            if (help) { // help COMMAND: a command of the root's
                CommandSpec root = spec.root();
                return root.subcommands().containsKey(a) ? null
                        : "unknown command '" + a + "'" + didYouMean(a, root.subcommands().keySet()) + " (see --help)";
            }
            if (!spec.subcommands().isEmpty()) {
                CommandLine sub = spec.subcommands().get(a);
                if (sub != null) {
                    spec = sub.getCommandSpec();
                    help = a.equals("help");
                    continue;
                }
                if (spec.positionalParameters().isEmpty()) {
                    return "unknown command '" + a + "'" + didYouMean(a, spec.subcommands().keySet()) + " (see " + helpOf(spec) + ")";
                }
            }
        }
        return null;
    }

    /**
     * The arguments with each {@code @FILE} replaced by the file's arguments, as picocli reads them (one or more a
     * line, {@code #} comments, quotes keep spaces); a file that cannot be read is left for picocli to report.
     */
    static List<String> expanded(String[] args) {
        List<String> out = new ArrayList<>();
        for (String a : args) {
            java.nio.file.Path file = a.startsWith("@") && a.length() > 1 ? java.nio.file.Path.of(a.substring(1)) : null;
            if (file == null || !java.nio.file.Files.isRegularFile(file)) {
                out.add(a);
                continue;
            }
            try {
                for (String line : java.nio.file.Files.readAllLines(file)) {
                    java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"([^\"]*)\"|'([^']*)'|(\\S+)").matcher(line.strip());
                    while (m.find()) {
                        if (m.group(3) != null && m.group(3).startsWith("#")) {
                            break;
                        }
                        out.add(m.group(1) != null ? m.group(1) : m.group(2) != null ? m.group(2) : m.group(3));
                    }
                }
            } catch (java.io.IOException | RuntimeException e) {
                out.add(a);
            }
        }
        return out;
    }

    private static String forCommand(CommandSpec spec) {
        return spec.parent() == null ? "" : " for " + spec.qualifiedName(" ").replaceFirst("^\\S+ ", "");
    }

    private static String helpOf(CommandSpec spec) {
        return spec.parent() == null ? "--help" : spec.qualifiedName(" ").replaceFirst("^\\S+ ", "") + " --help";
    }

    private static boolean isNumber(String a) {
        try {
            Double.parseDouble(a);
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** "; did you mean 'X'?" for the nearest of {@code names} close enough to be a misspelling, else "". */
    static String didYouMean(String given, Collection<String> names) {
        String g = bare(given);
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String n : names) {
            String b = bare(n);
            int d = b.startsWith(g) && g.length() >= 3 ? 0 : distance(g, b); // an abbreviation counts as near
            if (d < bestDistance || d == bestDistance && best != null && n.length() < best.length()) { // the shorter on a tie
                bestDistance = d;
                best = n;
            }
        }
        int allowed = Math.max(1, Math.min(3, g.length() / 3));
        return best != null && bestDistance <= allowed ? "; did you mean '" + best + "'?" : "";
    }

    private static String bare(String name) {
        return name.replaceFirst("^-+", "").toLowerCase(Locale.ROOT);
    }

    /** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
    static int distance(String a, String b) {
        int[][] d = new int[a.length() + 1][b.length() + 1];
        for (int i = 0; i <= a.length(); i++) {
            d[i][0] = i;
        }
        for (int j = 0; j <= b.length(); j++) {
            d[0][j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
                d[i][j] = Math.min(Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + cost);
                if (i > 1 && j > 1 && a.charAt(i - 1) == b.charAt(j - 2) && a.charAt(i - 2) == b.charAt(j - 1)) {
                    d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
                }
            }
        }
        return d[a.length()][b.length()];
    }

    /** {@code value} when it is one of {@code allowed}; else a usage error naming the option, with the nearest. */
    static String oneOf(String option, String value, List<String> allowed) {
        if (allowed.contains(value)) {
            return value;
        }
        throw new Main.UserError(option + " must be " + String.join(", ", allowed.subList(0, allowed.size() - 1)) + " or "
                + allowed.get(allowed.size() - 1) + ", not '" + value + "'" + didYouMean(value, allowed));
    }

    /** An option's JSON object (say {@code --params}), or a usage error that says where it is not one. */
    static ObjectNode jsonObject(String option, String text, String example) {
        JsonNode n;
        try {
            n = JsonInput.read(text, option, RequestError.INVALID_PARAMS);
        } catch (RequestError e) {
            throw new Main.UserError(e.getMessage() + " (write an object such as '" + example + "')");
        }
        if (n == null || !n.isObject()) {
            throw new Main.UserError(option + " must be a JSON object such as '" + example + "', not "
                    + (n == null || n.isMissingNode() ? "nothing" : n.getNodeType().toString().toLowerCase(Locale.ROOT)));
        }
        return (ObjectNode) n;
    }
}
