package io.blip2stream.model.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What a checkpoint's README.md (its Hugging Face model card) says about it, for a user deciding what to send: the
 * first paragraph, which on the Hub and in {@code train}'s cards says what the model knows, and the examples of the
 * card's {@code widget} metadata (the Hub's inference-widget convention: {@code src}, {@code example_title}, a
 * {@code text} question, an expected {@code output.text}), with their images read from the checkpoint's folder.
 * A card is documentation, not configuration: a missing or malformed one gives an empty card, never an error.
 */
public record ModelCard(String summary, List<Example> examples) {

    /**
     * At most this many examples, each image at most {@link #MAX_EXAMPLE_BYTES} (1 MB of base64 at most, read at
     * start and served pre-encoded): a card cannot make the page, or {@code GET /v1/info}, heavy.
     */
    public static final int MAX_EXAMPLES = 12;
    public static final int MAX_EXAMPLE_BYTES = 64 * 1024;
    static final int MAX_SUMMARY_CHARS = 1200;
    static final long MAX_CARD_BYTES = 1 << 20;

    public static final ModelCard NONE = new ModelCard("", List.of());

    /**
     * One example: an image from the checkpoint's folder and, for a question, the question; the expected answer
     * when the card gives one.
     *
     * @param mediaType image/png, image/jpeg, image/gif or image/bmp, from the file's first bytes
     */
    public record Example(String title, String question, String expected, byte[] image, String mediaType) {}

    private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());

    /** The card in {@code dir}, or {@link #NONE} when it has none or it cannot be read. */
    public static ModelCard read(Path dir) {
        Path file = dir.resolve("README.md");
        try {
            // the checkpoint's own card: not a link to some other file, which /v1/info would then publish
            if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS) || Files.size(file) > MAX_CARD_BYTES
                    || !file.toRealPath().startsWith(dir.toRealPath())) {
                return NONE;
            }
            return parse(Files.readString(file, StandardCharsets.UTF_8), dir);
        } catch (IOException | RuntimeException e) {
            return NONE;
        }
    }

    static ModelCard parse(String text, Path dir) throws IOException {
        text = text.replace("\r\n", "\n");
        JsonNode meta = null;
        if (text.startsWith("---\n")) {
            int end = text.indexOf("\n---", 4);
            if (end > 0) {
                try {
                    meta = YAML.readTree(text.substring(4, end));
                } catch (IOException e) {
                    meta = null; // a malformed header: the text is still a card
                }
                int next = text.indexOf('\n', end + 4);
                text = next < 0 ? "" : text.substring(next + 1);
            }
        }
        return new ModelCard(summary(text), examples(meta, dir));
    }

    /**
     * The first paragraph of prose (not a heading, a list, a table, a quote, an image, code or an HTML block), as
     * plain text.
     */
    static String summary(String markdown) {
        boolean inCode = false;
        StringBuilder p = new StringBuilder();
        for (String line : markdown.split("\n")) {
            String s = line.strip();
            if (s.startsWith("```")) {
                inCode = !inCode;
                continue;
            }
            if (inCode) {
                continue;
            }
            boolean prose = !s.isEmpty() && !s.startsWith("#") && !s.startsWith("|") && !s.startsWith(">") && !s.startsWith("<")
                    && !s.startsWith("- ") && !s.startsWith("* ") && !s.startsWith("![") && !s.startsWith("[![");
            if (prose) {
                p.append(p.length() == 0 ? "" : " ").append(s);
                if (p.length() > 2 * MAX_SUMMARY_CHARS) {
                    break; // enough to cut from: the rewriting below never sees a megabyte paragraph
                }
            } else if (p.length() > 0) {
                break;
            }
        }
        // as text, not Markdown: links to their words, no code ticks or emphasis marks
        String out = p.substring(0, Math.min(p.length(), 2 * MAX_SUMMARY_CHARS)).replaceAll("\\[([^\\]]*)]\\([^)]*\\)", "$1").replace("`", "").replace("**", "").replace("__", "");
        return out.length() <= MAX_SUMMARY_CHARS ? out : out.substring(0, MAX_SUMMARY_CHARS - 1) + "…";
    }

    private static List<Example> examples(JsonNode meta, Path dir) throws IOException {
        List<Example> out = new ArrayList<>();
        JsonNode widget = meta == null ? null : meta.get("widget");
        if (widget == null || !widget.isArray()) {
            return out;
        }
        Path root = dir.toRealPath();
        for (JsonNode w : widget) {
            if (out.size() == MAX_EXAMPLES) {
                break;
            }
            String src = w.path("src").asText("");
            if (src.isEmpty() || src.contains(":") || src.startsWith("/")) {
                continue; // only files of the checkpoint itself: a card never makes the service fetch anything
            }
            Path file = root.resolve(src).normalize();
            if (!file.startsWith(root) || !Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)
                    || Files.size(file) > MAX_EXAMPLE_BYTES || !file.toRealPath().startsWith(root)) {
                continue;
            }
            byte[] image = Files.readAllBytes(file);
            String type = mediaType(image);
            if (type == null) {
                continue;
            }
            String question = w.path("text").asText(null);
            String expected = w.path("output").path("text").asText(null);
            String title = w.path("example_title").asText(question != null ? question : file.getFileName().toString());
            out.add(new Example(title, question == null || question.isBlank() ? null : question, expected, image, type));
        }
        return out;
    }

    /** The image's type by its signature, or null for what is not one of the four the service reads. */
    static String mediaType(byte[] b) {
        if (b.length > 8 && (b[0] & 0xff) == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G') {
            return "image/png";
        }
        if (b.length > 3 && (b[0] & 0xff) == 0xff && (b[1] & 0xff) == 0xd8) {
            return "image/jpeg";
        }
        if (b.length > 6 && new String(b, 0, 3, StandardCharsets.ISO_8859_1).toUpperCase(Locale.ROOT).equals("GIF")) {
            return "image/gif";
        }
        if (b.length > 2 && b[0] == 'B' && b[1] == 'M') {
            return "image/bmp";
        }
        return null;
    }
}
