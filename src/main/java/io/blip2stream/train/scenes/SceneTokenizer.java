package io.blip2stream.train.scenes;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The word-level vocabulary of the scenes, written as a Hugging Face {@code tokenizer.json} that both this project
 * (DJL's binding of the tokenizers library) and transformers load. One vocabulary serves the language model and the
 * Q-Former: OPT's special tokens at OPT's ids ({@code </s>} = 2 is BOS and EOS, and the Q-Former's [CLS]),
 * {@code <image>} for transformers' image tokens, {@code [DEC]} for the Q-Former's image-grounded text generation.
 * Text is lower-cased and split on whitespace and punctuation; encoding adds {@code </s>} in front, as OPT's does.
 */
public final class SceneTokenizer {
    public static final int BOS = 0;   // <s>, unused, as in OPT
    public static final int PAD = 1;   // <pad>
    public static final int EOS = 2;   // </s>: also the beginning of every encoded text, and the Q-Former's [CLS]
    public static final int UNK = 3;   // <unk>
    public static final int IMAGE = 4; // <image>
    public static final int DEC = 5;   // [DEC]
    static final List<String> SPECIAL = List.of("<s>", "<pad>", "</s>", "<unk>", "<image>", "[DEC]");

    private SceneTokenizer() {}

    /** Token ids by word, specials first. */
    public static Map<String, Integer> vocab() {
        Map<String, Integer> v = new LinkedHashMap<>();
        for (String s : SPECIAL) {
            v.put(s, v.size());
        }
        for (String w : Scene.vocabulary()) {
            v.putIfAbsent(w, v.size());
        }
        return v;
    }

    /** The vocabulary size, rounded up to a multiple of 8 (the spare ids are unused tokens). */
    public static int vocabSize() {
        return (vocab().size() + 7) / 8 * 8;
    }

    /** Writes tokenizer.json and tokenizer_config.json into {@code dir}. */
    public static void write(Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        Map<String, Integer> vocab = new LinkedHashMap<>(vocab());
        for (int i = vocab.size(); i < vocabSize(); i++) {
            vocab.put("[unused" + i + "]", i);
        }
        ObjectNode root = json.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (String s : SPECIAL) {
            ObjectNode t = added.addObject();
            t.put("id", vocab.get(s));
            t.put("content", s);
            t.put("single_word", false);
            t.put("lstrip", false);
            t.put("rstrip", false);
            t.put("normalized", false);
            t.put("special", true);
        }
        root.putObject("normalizer").put("type", "Lowercase");
        root.putObject("pre_tokenizer").put("type", "Whitespace");
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        single.addObject().putObject("SpecialToken").put("id", "</s>").put("type_id", 0);
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        ArrayNode pair = post.putArray("pair");
        pair.addObject().putObject("SpecialToken").put("id", "</s>").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
        ObjectNode specials = post.putObject("special_tokens");
        ObjectNode eos = specials.putObject("</s>");
        eos.put("id", "</s>");
        eos.putArray("ids").add(EOS);
        eos.putArray("tokens").add("</s>");
        root.putNull("decoder");
        ObjectNode model = root.putObject("model");
        model.put("type", "WordLevel");
        ObjectNode v = model.putObject("vocab");
        vocab.forEach(v::put);
        model.put("unk_token", "<unk>");
        Files.createDirectories(dir);
        json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("tokenizer.json").toFile(), root);

        ObjectNode cfg = json.createObjectNode();
        cfg.put("tokenizer_class", "PreTrainedTokenizerFast");
        cfg.put("bos_token", "</s>");
        cfg.put("eos_token", "</s>");
        cfg.put("pad_token", "<pad>");
        cfg.put("unk_token", "<unk>");
        cfg.put("model_max_length", 64);
        json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
    }
}
