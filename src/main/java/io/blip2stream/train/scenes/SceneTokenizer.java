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
 * The scenes' tokenizer: a byte-level BPE ({@link ByteLevelBpe}, as OPT's) learnt from the texts {@code train} uses
 * (captions, "a photo of" captions, questions in {@linkplain Phrasings.Set#TRAINING the training phrasings} and their
 * answers, from {@value #CORPUS_SCENES} training scenes), written as a Hugging Face {@code tokenizer.json} that both
 * this project (DJL's binding of the tokenizers library) and transformers load. Every word of those texts is one
 * token; any other text still encodes, in pieces (a question with words never trained on has no unknown token).
 * One vocabulary serves the language model and the Q-Former: OPT's special tokens at OPT's ids ({@code </s>} = 2 is
 * BOS and EOS, and the Q-Former's [CLS]), {@code <image>} for transformers' image tokens, {@code [DEC]} for the
 * Q-Former's image-grounded text generation. Text is lower-cased; encoding adds {@code </s>} in front, as OPT's does.
 */
public final class SceneTokenizer {
    public static final int BOS = 0;   // <s>, unused, as in OPT
    public static final int PAD = 1;   // <pad>
    public static final int EOS = 2;   // </s>: also the beginning of every encoded text, and the Q-Former's [CLS]
    public static final int UNK = 3;   // <unk>, never produced (every byte is a token)
    public static final int IMAGE = 4; // <image>
    public static final int DEC = 5;   // [DEC]
    static final List<String> SPECIAL = List.of("<s>", "<pad>", "</s>", "<unk>", "<image>", "[DEC]");

    /** The most tokens: the specials, the 256 bytes and the merges learnt (a multiple of 8). */
    static final int MAX_VOCAB = 1024;
    static final int CORPUS_SCENES = 3000;

    private SceneTokenizer() {}

    private static final class Holder {
        static final ByteLevelBpe BPE = ByteLevelBpe.train(corpus(), SPECIAL, MAX_VOCAB);
    }

    /** The texts the merges are learnt from, drawn from training scenes by a fixed seed. */
    static List<String> corpus() {
        List<String> out = new java.util.ArrayList<>();
        for (int i = 0; i < CORPUS_SCENES; i++) {
            Scene s = SceneGenerator.sample(SceneGenerator.Split.TRAIN, i);
            java.util.SplittableRandom r = new java.util.SplittableRandom(i);
            out.add(s.caption());
            out.add("a photo of " + s.caption());
            for (Scene.QuestionAnswer qa : s.questions(r, i % 4 == 0 ? Phrasings.Set.CANONICAL : Phrasings.Set.TRAINING)) {
                out.add("Question: " + qa.question() + " Answer: " + qa.answer());
            }
        }
        return out;
    }

    /** The tokenizer itself. */
    public static ByteLevelBpe bpe() {
        return Holder.BPE;
    }

    /** Token ids by token (byte characters: {@code Ġred} is " red"), specials first. */
    public static Map<String, Integer> vocab() {
        return Holder.BPE.vocab();
    }

    /** The token of {@code word} after a space (" red", as in "are the circles red?"); every scene word is one. */
    public static int word(String word) {
        Integer id = Holder.BPE.word(word, true);
        if (id == null) {
            throw new IllegalArgumentException("'" + word + "' is not one token of the scenes' tokenizer");
        }
        return id;
    }

    /** The vocabulary size, rounded up to a multiple of 8 (the spare ids are unused tokens). */
    public static int vocabSize() {
        return (vocab().size() + 7) / 8 * 8;
    }

    /** Writes tokenizer.json and tokenizer_config.json into {@code dir}, with OPT's template ({@code </s>} in front). */
    public static void write(Path dir) throws IOException {
        write(dir, false);
    }

    /**
     * Writes tokenizer.json and tokenizer_config.json into {@code dir}: encoding adds {@code </s>} in front, as OPT's
     * tokenizer does, or, for an encoder-decoder language model ({@code eosAfter}), after the text, as T5's does.
     */
    public static void write(Path dir, boolean eosAfter) throws IOException {
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
        root.set("pre_tokenizer", byteLevel(json));
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        ArrayNode pair = post.putArray("pair");
        if (eosAfter) { // T5: "$A </s>", "$A </s> $B </s>"
            single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
            single.addObject().putObject("SpecialToken").put("id", "</s>").put("type_id", 0);
            pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
            pair.addObject().putObject("SpecialToken").put("id", "</s>").put("type_id", 0);
            pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
            pair.addObject().putObject("SpecialToken").put("id", "</s>").put("type_id", 1);
        } else { // OPT: "</s> $A", "</s> $A $B"
            single.addObject().putObject("SpecialToken").put("id", "</s>").put("type_id", 0);
            single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
            pair.addObject().putObject("SpecialToken").put("id", "</s>").put("type_id", 0);
            pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
            pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
        }
        ObjectNode specials = post.putObject("special_tokens");
        ObjectNode eos = specials.putObject("</s>");
        eos.put("id", "</s>");
        eos.putArray("ids").add(EOS);
        eos.putArray("tokens").add("</s>");
        if (eosAfter) { // T5's words carry their space in front ("▁red"); its decoder drops the first, as this one does
            ObjectNode seq = root.putObject("decoder");
            seq.put("type", "Sequence");
            ArrayNode decoders = seq.putArray("decoders");
            decoders.add(byteLevel(json));
            decoders.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
        } else {
            root.set("decoder", byteLevel(json));
        }
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        ObjectNode v = model.putObject("vocab");
        vocab.forEach(v::put);
        ArrayNode merges = model.putArray("merges");
        bpe().merges().forEach(m -> merges.add(m[0] + " " + m[1]));
        Files.createDirectories(dir);
        json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("tokenizer.json").toFile(), root);

        ObjectNode cfg = json.createObjectNode();
        cfg.put("tokenizer_class", "PreTrainedTokenizerFast");
        if (!eosAfter) {
            cfg.put("bos_token", "</s>");
        }
        cfg.put("eos_token", "</s>");
        cfg.put("pad_token", "<pad>");
        cfg.put("unk_token", "<unk>");
        cfg.put("model_max_length", 64);
        json.writerWithDefaultPrettyPrinter().writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
    }

    /** GPT-2's ByteLevel step, without a space added in front (as OPT's): the pre-tokenizer and the decoder alike. */
    private static ObjectNode byteLevel(ObjectMapper json) {
        return json.createObjectNode().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true)
                .put("use_regex", true);
    }
}
