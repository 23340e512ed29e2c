package io.blip2stream.train.scenes;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A byte-level BPE vocabulary, as GPT-2's and OPT's: text is lower-cased, split by GPT-2's pattern (a word with the
 * space before it, numbers, punctuation), each piece's UTF-8 bytes mapped to printable characters
 * ({@link #BYTE_CHARS}, GPT-2's {@code bytes_to_unicode}), and pairs merged in the order learnt. Any text encodes
 * (the 256 bytes are all in the vocabulary), so a word never seen in training becomes several tokens, never an
 * unknown one. {@link #train} learns the merges from a corpus, most frequent pair first (ties by the pair's text),
 * as the tokenizers library's BpeTrainer does; {@link #encode} applies them as the library does, which the tests
 * check against it.
 */
public final class ByteLevelBpe {
    /** GPT-2's pre-tokenizer pattern (the tokenizers library's ByteLevel with use_regex). */
    static final Pattern SPLIT = Pattern.compile("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");

    /** GPT-2's printable stand-in for each byte value. */
    static final char[] BYTE_CHARS = byteChars();

    private final Map<String, Integer> vocab;       // token (byte characters) to id, specials first
    private final List<String[]> merges;            // in the order learnt
    private final Map<String, Integer> rank = new HashMap<>();

    ByteLevelBpe(Map<String, Integer> vocab, List<String[]> merges) {
        this.vocab = vocab;
        this.merges = merges;
        for (int i = 0; i < merges.size(); i++) {
            rank.put(merges.get(i)[0] + " " + merges.get(i)[1], i);
        }
    }

    private static char[] byteChars() {
        char[] out = new char[256];
        boolean[] kept = new boolean[256];
        for (int b = 0; b < 256; b++) {
            kept[b] = b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF;
        }
        int n = 0;
        for (int b = 0; b < 256; b++) {
            out[b] = kept[b] ? (char) b : (char) (256 + n++);
        }
        return out;
    }

    /** The pieces of {@code text} as byte characters: "what color?" to ["what", "Ġcolor", "?"]. */
    static List<String> pieces(String text) {
        List<String> out = new ArrayList<>();
        Matcher m = SPLIT.matcher(text.toLowerCase(Locale.ROOT));
        while (m.find()) {
            StringBuilder b = new StringBuilder();
            for (byte x : m.group().getBytes(StandardCharsets.UTF_8)) {
                b.append(BYTE_CHARS[x & 0xff]);
            }
            out.add(b.toString());
        }
        return out;
    }

    /**
     * Learns merges from {@code corpus} until the vocabulary (the specials, the 256 bytes, the merged tokens) holds
     * {@code size} tokens or no pair is seen twice.
     */
    static ByteLevelBpe train(List<String> corpus, List<String> specials, int size) {
        Map<String, Integer> counts = new HashMap<>();
        for (String text : corpus) {
            for (String p : pieces(text)) {
                counts.merge(p, 1, Integer::sum);
            }
        }
        List<List<String>> words = new ArrayList<>();
        List<Integer> freq = new ArrayList<>();
        counts.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            List<String> symbols = new ArrayList<>();
            e.getKey().codePoints().forEach(c -> symbols.add(new String(Character.toChars(c))));
            words.add(symbols);
            freq.add(e.getValue());
        });
        Map<String, Integer> vocab = new LinkedHashMap<>();
        specials.forEach(s -> vocab.put(s, vocab.size()));
        for (char c : BYTE_CHARS) {
            vocab.putIfAbsent(String.valueOf(c), vocab.size());
        }
        List<String[]> merges = new ArrayList<>();
        while (vocab.size() < size) {
            Map<String, Integer> pairs = new HashMap<>();
            for (int w = 0; w < words.size(); w++) {
                List<String> s = words.get(w);
                for (int i = 0; i + 1 < s.size(); i++) {
                    pairs.merge(s.get(i) + " " + s.get(i + 1), freq.get(w), Integer::sum);
                }
            }
            String best = null;
            int bestCount = 1;
            for (Map.Entry<String, Integer> e : pairs.entrySet()) {
                if (e.getValue() > bestCount || e.getValue() == bestCount && best != null && e.getKey().compareTo(best) < 0) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            if (best == null) {
                break; // every pair left is seen once
            }
            String[] pair = best.split(" ", 2);
            String merged = pair[0] + pair[1];
            merges.add(pair);
            vocab.putIfAbsent(merged, vocab.size());
            for (List<String> s : words) {
                for (int i = 0; i + 1 < s.size(); i++) {
                    if (s.get(i).equals(pair[0]) && s.get(i + 1).equals(pair[1])) {
                        s.set(i, merged);
                        s.remove(i + 1);
                    }
                }
            }
        }
        return new ByteLevelBpe(vocab, merges);
    }

    public Map<String, Integer> vocab() {
        return vocab;
    }

    List<String[]> merges() {
        return merges;
    }

    /** The ids of {@code text}, without special tokens: each piece merged lowest rank first. */
    public int[] encode(String text) {
        List<Integer> ids = new ArrayList<>();
        for (String p : pieces(text)) {
            List<String> s = new ArrayList<>();
            p.codePoints().forEach(c -> s.add(new String(Character.toChars(c))));
            while (s.size() > 1) {
                int at = -1;
                int best = Integer.MAX_VALUE;
                for (int i = 0; i + 1 < s.size(); i++) {
                    Integer r = rank.get(s.get(i) + " " + s.get(i + 1));
                    if (r != null && r < best) {
                        best = r;
                        at = i;
                    }
                }
                if (at < 0) {
                    break;
                }
                s.set(at, s.get(at) + s.get(at + 1));
                s.remove(at + 1);
            }
            s.forEach(t -> ids.add(vocab.get(t)));
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The token a whole word is, after a space ({@code Ġword}) or at a text's start; null when it is several tokens. */
    public Integer word(String word, boolean afterSpace) {
        List<String> p = pieces(afterSpace ? " " + word : word);
        return p.size() == 1 ? vocab.get(p.get(0)) : null;
    }
}
