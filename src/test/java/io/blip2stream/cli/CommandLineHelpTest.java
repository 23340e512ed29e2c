package io.blip2stream.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 24, the command line, on picocli's model of it: every command's description made of whole sentences (the
 * first one alone is what the top-level help lists), every option described, and usage errors that name what is at
 * fault, with the name probably meant. {@code CommandLineIT} checks the same on the packaged jar's output.
 */
class CommandLineHelpTest {

    static List<CommandSpec> commands() {
        List<CommandSpec> all = new ArrayList<>();
        CommandSpec root = new CommandLine(new Main()).getCommandSpec();
        all.add(root);
        root.subcommands().values().forEach(c -> all.add(c.getCommandSpec()));
        return all;
    }

    @Test
    void everyDescriptionIsWholeSentencesAndEveryOptionIsDescribed() {
        List<String> faults = new ArrayList<>();
        for (CommandSpec c : commands()) {
            String[] d = c.usageMessage().description();
            if (d.length == 0) {
                faults.add(c.qualifiedName() + ": no description");
            }
            for (String s : d) {
                s = s.replace("%n", " ");
                if (!s.strip().matches("(?s).*[.!?)]$") || s.strip().isEmpty() || !Character.isUpperCase(s.strip().charAt(0))
                        && !s.strip().startsWith("-")) {
                    faults.add(c.qualifiedName() + ": description element not a whole sentence: '" + s + "'");
                }
            }
            for (OptionSpec o : c.options()) {
                String text = String.join(" ", o.description()).strip();
                if (text.isEmpty() && !o.hidden()) {
                    faults.add(c.qualifiedName() + " " + o.longestName() + ": no description");
                }
            }
        }
        assertEquals(List.of(), faults);
    }

    static String run(String... args) {
        PrintStream err = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setErr(new PrintStream(buf, true, StandardCharsets.UTF_8));
        int code;
        try {
            code = Main.run(args);
        } finally {
            System.setErr(err);
        }
        return code + " " + buf.toString(StandardCharsets.UTF_8).strip();
    }

    @Test
    void aMisspeltCommandOrOptionGetsTheNameProbablyMeant() throws Exception {
        assertEquals("2 error: unknown command 'capton'; did you mean 'caption'? (see --help)", run("capton"));
        assertEquals("2 error: unknown command 'srv' (see --help)", run("srv").replace("; did you mean 'serve'?", ""));
        // reported before the missing --image, which is what picocli would say first
        assertEquals("2 error: unknown option '--temprature' for caption; did you mean '--temperature'? (see caption --help)",
                run("caption", "--temprature", "0.5"));
        assertEquals("2 error: unknown option '--max-new-token' for ask; did you mean '--max-new-tokens'? (see ask --help)",
                run("ask", "--image", "x.png", "--question", "q", "--max-new-token=3"));
        // a value that starts with a dash is a value, not an unknown option
        assertTrue(run("caption", "--prompt", "-x", "--image", "/nonexistent.png").contains("/nonexistent.png does not exist"));
        // an abbreviation of two names: the shorter one; help COMMAND; options read from an argument file
        assertEquals("2 error: unknown option '--ima' for caption; did you mean '--image'? (see caption --help)", run("caption", "--ima", "x"));
        assertEquals("2 error: unknown command 'capton'; did you mean 'caption'? (see --help)", run("help", "capton"));
        java.nio.file.Path args = java.nio.file.Files.createTempFile("args", ".args");
        java.nio.file.Files.writeString(args, "# a scenario\ncaption --prompt \"a photo of\"\n--temprature 0.5\n");
        assertEquals("2 error: unknown option '--temprature' for caption; did you mean '--temperature'? (see caption --help)",
                run("@" + args));
        // nothing close: no guess
        assertEquals("2 error: unknown option '--zzzzzz' for produce (see produce --help)", run("produce", "--zzzzzz"));
        String wrongTask = run("produce", "--task", "captoin", "--image", "models/example.png");
        assertEquals("2 error: --task must be caption, vqa, match or embed, not 'captoin'; did you mean 'caption'?", wrongTask);
    }

    @Test
    void aMalformedJsonOptionSaysWhereWithoutTheParsersInternals() {
        String out = run("produce", "--task", "caption", "--image", "models/example.png", "--params", "notjson");
        assertEquals("2 error: --params is not JSON: unexpected 'notjson' (text must be in double quotes) at line 1, column 1 "
                + "(write an object such as '{\"max_new_tokens\":12}')", out);
        assertEquals("2 error: --params must be a JSON object such as '{\"max_new_tokens\":12}', not array",
                run("produce", "--task", "caption", "--params", "[1]"));
        String open = run("load", "--params", "{\"max_new_tokens\": 3", "--image", "models/example.png");
        assertTrue(open.startsWith("2 error: --params is not JSON: it ends before the JSON does"), open);
        for (String s : List.of(out, open)) {
            assertFalse(s.contains("Jackson") || s.contains("REDACTED") || s.contains("StreamReadFeature") || s.contains("was expecting"), s);
        }
    }
}
