package io.blip2stream;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * README.md is for its reader: its first screen (60 lines) holds the two set-up commands, the build-and-serve command
 * and the CI's test command; its Settings table names every environment variable of conf/application.yaml; and no
 * relative link in README.md or docs/*.md leads nowhere (a file that does not exist, a heading that does not).
 * The checks are plain functions of the text, so {@link #theChecksFailOnABrokenReadme} shows each one failing.
 */
class DocsTest {
    static final Pattern VARIABLE = Pattern.compile("BLIP2_[A-Z0-9_]+");
    /** A Markdown link or image: [text](target) or ![alt](target). */
    static final Pattern LINK = Pattern.compile("\\]\\(([^)\\s]+)\\)");
    static final String SERVE = "mvn -B -q package -DskipTests && java -jar target/blip2-stream.jar serve";

    @Test
    void theFirstScreenHoldsTheRunAndTestCommands() throws IOException {
        assertEquals(List.of(), firstScreenProblems(lines(Path.of("README.md"))));
    }

    @Test
    void everyVariableOfTheDefaultsIsInTheSettingsTable() throws IOException {
        Set<String> variables = variables(Files.readString(Path.of("conf/application.yaml")));
        assertTrue(variables.size() > 80, "conf/application.yaml names its variables: " + variables.size());
        assertTrue(variables.contains("BLIP2_KAFKA_EXACTLY_ONCE") && variables.contains("BLIP2_KAFKA_EMBEDDED_CONTROLLER_PORT"));
        assertEquals(Set.of(), missingFromSettings(lines(Path.of("README.md")), variables),
                "variables of conf/application.yaml that README's Settings table does not name");
    }

    @Test
    void everyRelativeLinkLeadsToAFileAndHeadingThatExist() throws IOException {
        List<String> broken = new ArrayList<>();
        for (Path doc : documents()) {
            broken.addAll(brokenLinks(doc));
        }
        assertEquals(List.of(), broken);
    }

    /** Each check finds what it is for: a README without its commands, a variable dropped, a link to nothing. */
    @Test
    void theChecksFailOnABrokenReadme(@org.junit.jupiter.api.io.TempDir Path tmp) throws IOException {
        List<String> readme = lines(Path.of("README.md"));
        List<String> late = new ArrayList<>(readme);
        for (int i = 0; i < 60; i++) {
            late.add(1, "");
        }
        assertEquals(2, firstScreenProblems(late).size(), "both commands pushed past line 60: " + firstScreenProblems(late));

        List<String> dropped = new ArrayList<>(readme);
        dropped.removeIf(l -> l.startsWith("| `BLIP2_KAFKA_EXACTLY_ONCE`"));
        assertEquals(Set.of("BLIP2_KAFKA_EXACTLY_ONCE"), missingFromSettings(dropped, Set.of("BLIP2_KAFKA_EXACTLY_ONCE", "BLIP2_HTTP_PORT")));
        List<String> outside = new ArrayList<>(dropped);
        outside.add(1, "BLIP2_KAFKA_EXACTLY_ONCE is named, but not in the table");
        assertEquals(Set.of("BLIP2_KAFKA_EXACTLY_ONCE"), missingFromSettings(outside, Set.of("BLIP2_KAFKA_EXACTLY_ONCE")),
                "a variable counts only in a row of the Settings table");

        Files.createDirectories(tmp.resolve("docs"));
        Files.writeString(tmp.resolve("docs/a.md"), "# A\n\n## Some heading, with `code`\n");
        Path doc = tmp.resolve("README.md");
        Files.writeString(doc, "# R\n\n[ok](docs/a.md) [ok](docs/a.md#some-heading-with-code) [ok](#r) [web](https://example.com/x)\n"
                + "[gone](docs/b.md) [no heading](docs/a.md#nothing) [no anchor](#nothing)\n```\n[in code](nowhere.md)\n```\n");
        assertEquals(List.of(doc + ": docs/b.md", doc + ": docs/a.md#nothing", doc + ": #nothing"), brokenLinks(doc));
    }

    static List<String> firstScreenProblems(List<String> readme) {
        List<String> first = readme.subList(0, Math.min(60, readme.size()));
        List<String> problems = new ArrayList<>();
        int open = first.indexOf("<!-- ci:test -->");
        int close = first.indexOf("<!-- /ci:test -->");
        if (open < 0 || close < open || !first.subList(open, close).contains("mvn verify")) {
            problems.add("no <!-- ci:test --> block with `mvn verify` in the first 60 lines");
        }
        if (!first.contains(SERVE)) {
            problems.add("no `" + SERVE + "` in the first 60 lines");
        }
        return problems;
    }

    static Set<String> variables(String text) {
        Set<String> out = new TreeSet<>();
        Matcher m = VARIABLE.matcher(text);
        while (m.find()) {
            out.add(m.group());
        }
        return out;
    }

    /** The variables not named in a table row (a line starting with |) between "## Settings" and the next "## ". */
    static Set<String> missingFromSettings(List<String> readme, Set<String> variables) {
        StringBuilder rows = new StringBuilder();
        boolean in = false;
        for (String line : readme) {
            if (line.startsWith("## ")) {
                in = line.equals("## Settings");
            } else if (in && line.startsWith("|")) {
                rows.append(line).append('\n');
            }
        }
        Set<String> missing = new TreeSet<>(variables);
        missing.removeAll(variables(rows.toString()));
        return missing;
    }

    static List<Path> documents() throws IOException {
        List<Path> docs = new ArrayList<>(List.of(Path.of("README.md")));
        try (Stream<Path> s = Files.list(Path.of("docs"))) {
            s.filter(p -> p.toString().endsWith(".md")).sorted().forEach(docs::add);
        }
        return docs;
    }

    /** Relative links (outside code blocks) whose file, or whose #anchor in a Markdown file, does not exist. */
    static List<String> brokenLinks(Path doc) throws IOException {
        List<String> broken = new ArrayList<>();
        boolean code = false;
        for (String line : lines(doc)) {
            if (line.startsWith("```")) {
                code = !code;
                continue;
            }
            if (code) {
                continue;
            }
            Matcher m = LINK.matcher(line);
            while (m.find()) {
                String target = m.group(1);
                if (target.matches("[a-z][a-z0-9+.-]*:.*")) {
                    continue; // https:, http:, mailto:
                }
                int hash = target.indexOf('#');
                String file = hash < 0 ? target : target.substring(0, hash);
                String anchor = hash < 0 ? null : target.substring(hash + 1);
                Path p = file.isEmpty() ? doc : doc.getParent() == null ? Path.of(file) : doc.getParent().resolve(file);
                if (!Files.exists(p)) {
                    broken.add(doc + ": " + target);
                } else if (anchor != null && p.toString().endsWith(".md") && !anchors(p).contains(anchor)) {
                    broken.add(doc + ": " + target);
                }
            }
        }
        return broken;
    }

    /** GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens. */
    static Set<String> anchors(Path doc) throws IOException {
        Set<String> out = new LinkedHashSet<>();
        boolean code = false;
        for (String line : lines(doc)) {
            if (line.startsWith("```")) {
                code = !code;
            } else if (!code && line.startsWith("#")) {
                String text = line.replaceFirst("^#+\\s*", "").strip().toLowerCase(Locale.ROOT);
                String slug = text.replaceAll("[^\\p{L}\\p{N} _-]", "").replace(' ', '-');
                String unique = slug;
                for (int n = 1; out.contains(unique); n++) {
                    unique = slug + "-" + n;
                }
                out.add(unique);
            }
        }
        return out;
    }

    static List<String> lines(Path p) throws IOException {
        return List.of(Files.readString(p).replace("\r\n", "\n").split("\n", -1));
    }

    @Test
    void anchorsAreGitHubs() throws IOException {
        Set<String> readme = anchors(Path.of("README.md"));
        for (String a : List.of("settings", "kafka-over-tls-or-sasl", "who-can-reach-what-threat-model",
                "hostile-input-limits-and-guarantees", "run-the-tests", "several-nodes")) {
            assertTrue(readme.contains(a), a + " in " + readme);
        }
        assertFalse(readme.contains("settings-1"));
    }
}
