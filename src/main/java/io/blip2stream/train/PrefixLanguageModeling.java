package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * The "off-the-shelf" encoder-decoder language model (FlanT5's architecture, T5 v1.1) trained from scratch on the
 * scenes' text alone with a prefix language-modelling objective: the encoder reads a prefix, the decoder writes the
 * rest, as BLIP-2's second stage will use it (the paper: "the text is split into two parts; the prefix text is
 * concatenated with the visual representation as input to the LLM's encoder; the suffix text is the generation
 * target"). Each example is one of {@link LanguageModelPretraining}'s documents about a scene, its texts worded as
 * FlanT5's template asks ("Question: {q} Short answer: {a}"): every text but the last goes to the encoder whole,
 * each followed by {@code </s>}, as the tokenizer's template ends a text; the last is split, a question after its
 * cue "Short answer:", a "a photo of" caption after "a photo of", any other caption before its first word half
 * the time and after a random word otherwise; the encoder reads the prefix and {@code </s>}, the decoder writes
 * the suffix and {@code </s>}. So the decoder learns to say what the encoder read (copy an attribute, compare a
 * colour asked with the colour said), which is what stage 2 needs: the visual prompt in the encoder, the answer
 * from the decoder. Targets are tokenized after a space (" red", every scene word one token), as T5's tokenizer
 * gives every word its leading "▁"; the exported tokenizer's decoder strips it.
 *
 * <p>Dimensions: B batch, L encoder length, T decoder length, D d_model, V vocabulary.
 */
final class PrefixLanguageModeling {
    private PrefixLanguageModeling() {}

    static final Predicate<String> PARAMETERS = n -> n.startsWith("language_model.");

    /** What the encoder reads and what the decoder writes (both ending in {@code </s>}). */
    record Example(int[] encoderIds, int[] targetIds) {}

    /** Token ids of a text as T5's template encodes it: the text, then {@code </s>}. */
    static int[] encoderText(SceneData data, String text) {
        int[] ids = data.encode(text, -1); // "</s> text" (the scenes' tokenizer reads for OPT)
        int[] out = Arrays.copyOfRange(ids, 1, ids.length + 1);
        out[out.length - 1] = SceneTokenizer.EOS;
        return out;
    }

    /** A decoder target: the text after a space (so every word is its one token), then {@code </s>}. */
    static int[] target(SceneData data, String text) {
        return encoderText(data, " " + text);
    }

    static Example example(SceneData data, Scene s, SplittableRandom r) {
        String cue = LanguageModelPretraining.T5_ANSWER;
        boolean endsInYesNo = r.nextInt(3) == 0;
        int n = endsInYesNo ? 2 + r.nextInt(LanguageModelPretraining.MAX_TEXTS - 1) : 1 + r.nextInt(LanguageModelPretraining.MAX_TEXTS);
        List<int[]> encoder = new ArrayList<>();
        if (r.nextInt(4) == 0) {
            encoder.add(encoderText(data, LanguageModelPretraining.tags(s, r)));
        }
        for (int i = 0; i < n - 1; i++) {
            encoder.add(encoderText(data, LanguageModelPretraining.text(s, r, cue)));
        }
        String last = endsInYesNo ? LanguageModelPretraining.yesNo(s, r, cue) : LanguageModelPretraining.text(s, r, cue);
        String prefix;
        String suffix;
        int at = last.indexOf(" " + cue + " ");
        if (at >= 0) {
            prefix = last.substring(0, at + 1 + cue.length());
            suffix = last.substring(at + 2 + cue.length());
        } else if (last.startsWith("a photo of ")) {
            prefix = "a photo of";
            suffix = last.substring("a photo of ".length());
        } else {
            String[] words = last.split(" ");
            int k = r.nextBoolean() ? 0 : r.nextInt(words.length);
            prefix = String.join(" ", Arrays.copyOfRange(words, 0, k));
            suffix = String.join(" ", Arrays.copyOfRange(words, k, words.length));
        }
        encoder.add(encoderText(data, prefix));
        int length = encoder.stream().mapToInt(a -> a.length).sum();
        int[] enc = new int[length];
        int pos = 0;
        for (int[] part : encoder) {
            System.arraycopy(part, 0, enc, pos, part.length);
            pos += part.length;
        }
        return new Example(enc, target(data, suffix));
    }

    /**
     * A teacher-forced batch for T5: the decoder's inputs (the decoder start token {@code <pad>}, then the target
     * shifted right), its mask (1 up to the target's length; {@code <pad>} in front is real) and the labels, row-major
     * [B*T], -1 after the target.
     */
    record DecoderBatch(int[][] inputs, int[][] mask, int[] labels) {
        static DecoderBatch of(List<int[]> targets) {
            int b = targets.size();
            int t = targets.stream().mapToInt(x -> x.length).max().orElse(1);
            int[][] inputs = new int[b][t];
            int[][] mask = new int[b][t];
            int[] labels = new int[b * t];
            Arrays.fill(labels, -1);
            for (int i = 0; i < b; i++) {
                int[] y = targets.get(i);
                Arrays.fill(inputs[i], SceneTokenizer.PAD);
                for (int j = 0; j < y.length; j++) {
                    inputs[i][j] = j == 0 ? SceneTokenizer.PAD : y[j - 1]; // decoder_start_token_id is <pad>
                    mask[i][j] = 1;
                    labels[i * t + j] = y[j];
                }
            }
            return new DecoderBatch(inputs, mask, labels);
        }
    }

    /** The rows' encoder ids, right-padded, as embeddings [B, L, D] in the step's scope, with their mask. */
    static NDArray embed(SceneModel model, ai.djl.ndarray.NDManager scope, int[][] ids) {
        int b = ids.length;
        int l = ids[0].length;
        int[] flat = new int[b * l];
        for (int i = 0; i < b; i++) {
            System.arraycopy(ids[i], 0, flat, i * l, l);
        }
        return model.t5.shared().lookup(scope, flat).reshape(b, l, model.spec.tHidden()); // (B, L, D)
    }

    static TrainLoop.Step step(SceneModel model, SceneData data, int batch) {
        return (scope, step) -> {
            SplittableRandom r = new SplittableRandom(step * 104729L + 3);
            List<int[]> encoderRows = new ArrayList<>();
            List<int[]> targets = new ArrayList<>();
            for (Scene s : data.batch(step, batch)) {
                Example e = example(data, s, r);
                encoderRows.add(e.encoderIds());
                targets.add(e.targetIds());
            }
            int[][] enc = SceneData.pad(encoderRows);
            DecoderBatch dec = DecoderBatch.of(targets);
            NDArray logits = model.t5.logitsOfSequence(embed(model, scope, enc), SceneData.mask(enc), dec.inputs(), dec.mask()); // (B*T, V)
            NDArray loss = Losses.crossEntropy(logits, Losses.oneHot(dec.labels(), model.spec.vocab()));
            float[] v = logits.toFloatArray();
            Map<String, NDArray> metrics = new LinkedHashMap<>();
            metrics.put("token_acc", scope.create((float) Losses.accuracy(v, dec.labels())));
            double[] copy = copyAccuracy(enc, dec.labels(), v, model.spec.vocab());
            for (int k = 0; k < copy.length; k++) {
                if (!Double.isNaN(copy[k])) {
                    metrics.put(k < LanguageModelPretraining.COPY_KINDS.length ? "copy_" + LanguageModelPretraining.COPY_KINDS[k] : "yes_no",
                            scope.create((float) copy[k]));
                }
            }
            return new TrainLoop.Losses(loss, metrics);
        };
    }

    private static final int YES = SceneTokenizer.word("yes");
    private static final int NO = SceneTokenizer.word("no");

    /**
     * How well the decoder says what the encoder read: per kind of attribute, the accuracy on target words the
     * encoder's input holds; last, the accuracy on yes/no answers after an input that named a colour. NaN where the
     * batch held none.
     *
     * @param logits (B*T, V) flattened; {@code labels} (B*T), -1 where no loss
     */
    static double[] copyAccuracy(int[][] encoder, int[] labels, float[] logits, int vocab) {
        int kinds = LanguageModelPretraining.COPY_KINDS.length;
        int[] right = new int[kinds + 1];
        int[] total = new int[kinds + 1];
        int t = labels.length / encoder.length;
        for (int i = 0; i < labels.length; i++) {
            int y = labels[i];
            if (y < 0) {
                continue;
            }
            int[] input = encoder[i / t];
            int kind = y == YES || y == NO ? (namesColour(input) ? kinds : -1)
                    : contains(input, y) ? LanguageModelPretraining.kindOf(y) : -1;
            if (kind < 0) {
                continue;
            }
            right[kind] += Losses.argmax(logits, i, vocab) == y ? 1 : 0;
            total[kind]++;
        }
        double[] out = new double[kinds + 1];
        for (int k = 0; k < out.length; k++) {
            out[k] = total[k] == 0 ? Double.NaN : (double) right[k] / total[k];
        }
        return out;
    }

    private static boolean namesColour(int[] input) {
        for (int w : input) {
            if (LanguageModelPretraining.kindOf(w) == 1) {
                return true;
            }
        }
        return false;
    }

    private static boolean contains(int[] row, int token) {
        for (int w : row) {
            if (w == token) {
                return true;
            }
        }
        return false;
    }
}
