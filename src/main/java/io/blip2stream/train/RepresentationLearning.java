package io.blip2stream.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.train.scenes.Scene;
import io.blip2stream.train.scenes.SceneTokenizer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * BLIP-2's first stage, vision-language representation learning with the image encoder frozen: the learned queries
 * and the Q-Former trained on three objectives at once, each with its own self-attention mask (the paper's
 * Figure 2):
 * <ul>
 *   <li>ITC, image-text contrastive: the queries' outputs and the text's [CLS] output, projected and normalised;
 *   the best similarity over queries, in-batch negatives, a learned temperature. Queries and text do not see each
 *   other (two separate passes). Texts equal to a row's own caption count as positives too.</li>
 *   <li>ITM, image-text matching: queries and text in one pass, seeing each other (bidirectional mask), a binary
 *   head averaged over the query outputs; one hard negative text per image and one hard negative image per text,
 *   drawn in proportion to the ITC similarities.</li>
 *   <li>ITG, image-grounded text generation: the text's first token replaced by [DEC]; queries see only queries,
 *   text sees the queries and the text before it (multimodal causal mask); a language-modelling head on the text
 *   outputs.</li>
 * </ul>
 * Batches pair every scene with a twin that differs in one attribute (see {@link SceneData#batchWithTwins}), so that
 * the in-batch negatives of ITC, and the hard negatives ITM draws from them, include captions one word away.
 *
 * <p>Dimensions: B batch, Q queries, T text, S image tokens, D Q-Former hidden, E embedding size, V vocabulary.
 */
final class RepresentationLearning {
    private RepresentationLearning() {}

    /**
     * The share of ITM negatives drawn uniformly instead of by ITC similarity. On these scenes the hardest negative
     * differs from the truth in one attribute, and with hard negatives only the ITM head can stay at the prior for
     * the whole stage (seen in one of two runs); half easy negatives let it start. BLIP-2 draws them all by
     * similarity.
     */
    static final double RANDOM_NEGATIVES = 0.5;

    static final Predicate<String> PARAMETERS = n -> n.equals("query_tokens") || n.startsWith("qformer.")
            || n.startsWith("embeddings.") || n.startsWith("vision_projection.") || n.startsWith("text_projection.")
            || n.startsWith("itm_head.") || n.startsWith("train.itg_head.") || n.equals("train.itc_temperature");

    static TrainLoop.Step step(SceneModel model, SceneData data, int batch) {
        return step(model, data, batch, true);
    }

    /**
     * @param withItg whether ITG is one of the objectives; without it (the paper's ablation: ITG "improves
     *                retrieval", by making the queries extract what the text says) the stage is ITC and ITM alone
     */
    static TrainLoop.Step step(SceneModel model, SceneData data, int batch, boolean withItg) {
        return (scope, step) -> {
            SplittableRandom r = new SplittableRandom(step * 15485863L + 5);
            List<Scene> scenes = data.batchWithTwins(step, batch, r);
            int b = scenes.size();
            int q = model.spec.queries();
            NDArray image = model.vision.forward(data.pixels(scope, scenes, true, r)); // (B, S, Dv), frozen
            List<int[]> rows = new ArrayList<>();
            String[] captions = new String[b];
            for (int i = 0; i < b; i++) {
                captions[i] = data.caption(scenes.get(i));
                rows.add(data.encode(captions[i], -1)); // "</s> caption": </s> is the [CLS]
            }
            int[][] ids = SceneData.pad(rows);
            int[][] mask = SceneData.mask(ids);
            int t = ids[0].length;

            // ITC: queries alone, text alone
            NDArray queryOut = model.qformer.forward(queries(model, scope, b), image);                    // (B, Q, D)
            NDArray imageFeats = Losses.l2Normalize(model.visionProjection.forward(queryOut));             // (B, Q, E)
            NDArray textOut = model.qformer.forward(model.textEmbeddings.embed(scope, ids), 0,
                    QFormerMasks.keyPaddingMask(scope, mask, 0), null);                                            // (B, T, D)
            NDArray textFeat = Losses.l2Normalize(model.textProjection.forward(textOut.get(new NDIndex(":, 0, :")))); // (B, E)
            long e = model.spec.embedDim();
            NDArray sim = imageFeats.reshape((long) b * q, e).matMul(textFeat.transpose(1, 0))              // (B*Q, B)
                    .reshape(b, q, b).max(new int[] {1});                                                  // (B, B) image i, text j
            NDArray temp = model.itcTemperature.clip(0.001f, 0.5f);
            temp.attach(scope);
            NDArray logits = sim.div(temp);                                                                // (B, B)
            float[][] positives = new float[b][b];
            for (int i = 0; i < b; i++) {
                int n = 0;
                for (int j = 0; j < b; j++) {
                    n += captions[i].equals(captions[j]) ? 1 : 0;
                }
                for (int j = 0; j < b; j++) {
                    positives[i][j] = captions[i].equals(captions[j]) ? 1f / n : 0f;
                }
            }
            NDArray itc = io.blip2stream.model.nn.Ops.mulScalar(
                    Losses.crossEntropy(logits, positives).add(Losses.crossEntropy(logits.transpose(1, 0), positives)), 0.5f);

            // ITM: one positive, one hard negative text per image, one hard negative image per text
            float[] s = logits.toFloatArray();
            int[] negText = new int[b];
            int[] negImage = new int[b];
            for (int i = 0; i < b; i++) {
                negText[i] = hardNegative(s, i, b, true, captions, r);
                negImage[i] = hardNegative(s, i, b, false, captions, r);
            }
            int[] imageRows = new int[3 * b];
            List<int[]> textRows = new ArrayList<>();
            for (int i = 0; i < b; i++) {
                imageRows[i] = i;
                imageRows[b + i] = i;
                imageRows[2 * b + i] = negImage[i];
                textRows.add(ids[i]);
            }
            for (int i = 0; i < b; i++) {
                textRows.add(ids[negText[i]]);
            }
            for (int i = 0; i < b; i++) {
                textRows.add(ids[i]);
            }
            int[][] itmIds = textRows.toArray(new int[0][]);
            int[][] itmMask = SceneData.mask(itmIds);
            NDArray itmImage = image.get(new NDIndex("{}", scope.create(imageRows)));                      // (3B, S, Dv)
            NDArray joint = NDArrays.concat(new NDList(queries(model, scope, 3 * b), model.textEmbeddings.embed(scope, itmIds)), 1); // (3B, Q+T, D)
            NDArray jointOut = model.qformer.forward(joint, q, QFormerMasks.keyPaddingMask(scope, itmMask, q), itmImage); // (3B, Q+T, D)
            NDArray itmLogits = model.itmHead.forward(jointOut.get(new NDIndex(":, :{}, :", q))).mean(new int[] {1}); // (3B, 2)
            int[] itmLabels = new int[3 * b];
            for (int i = 0; i < b; i++) {
                itmLabels[i] = 1;
            }
            NDArray itm = Losses.crossEntropy(itmLogits, Losses.oneHot(itmLabels, 2));

            Map<String, NDArray> parts = new LinkedHashMap<>();
            parts.put("itc", itc);
            parts.put("itm", itm);
            parts.put("itm_acc", scope.create((float) Losses.accuracy(itmLogits, itmLabels)));
            if (!withItg) {
                return new TrainLoop.Losses(itc.add(itm), parts);
            }

            // ITG: [DEC] text after the queries, multimodal causal mask
            int[][] decIds = new int[b][];
            for (int i = 0; i < b; i++) {
                decIds[i] = ids[i].clone();
                decIds[i][0] = SceneTokenizer.DEC;
            }
            NDArray itgIn = NDArrays.concat(new NDList(queries(model, scope, b), model.textEmbeddings.embed(scope, decIds)), 1); // (B, Q+T, D)
            NDArray itgOut = model.qformer.forward(itgIn, q, QFormerMasks.multimodalCausalMask(scope, mask, q), image);   // (B, Q+T, D)
            NDArray textHidden = itgOut.get(new NDIndex(":, {}:, :", q)).reshape((long) b * t, model.spec.qHidden()); // (B*T, D)
            NDArray itgLogits = itgLogits(model, textHidden);                                                     // (B*T, V)
            int[] labels = new int[b * t];
            for (int i = 0; i < b; i++) {
                for (int j = 0; j < t; j++) {
                    boolean next = j + 1 < t && mask[i][j + 1] == 1;
                    boolean last = mask[i][j] == 1 && !next;
                    labels[i * t + j] = next ? ids[i][j + 1] : last ? SceneTokenizer.EOS : -1; // the last word predicts </s>
                }
            }
            NDArray itg = Losses.crossEntropy(itgLogits, Losses.oneHot(labels, model.spec.vocab()));

            parts.put("itg", itg);
            return new TrainLoop.Losses(itc.add(itm).add(itg), parts);
        };
    }

    /** The learned queries for {@code b} rows, [B, Q, D], in the step's scope (gradients reach query_tokens). */
    static NDArray queries(SceneModel model, NDManager scope, int b) {
        return scope.zeros(new Shape(b, model.spec.queries(), model.spec.qHidden())).add(model.queryTokens);
    }

    /** BertLMPredictionHead: dense, GELU, LayerNorm, then the word embeddings (tied) and a bias. */
    static NDArray itgLogits(SceneModel model, NDArray hidden) {
        SceneModel.ItgHead h = model.itgHead;
        NDArray x = h.layerNorm().forward(io.blip2stream.model.nn.Ops.gelu(h.dense().forward(hidden))); // (N, D)
        NDArray wordsT = model.textEmbeddings.words().array().transpose(1, 0);                        // (D, V)
        wordsT.attach(hidden.getManager());
        return x.matMul(wordsT).add(h.bias());                                                        // (N, V)
    }

    /**
     * Row {@code i}'s negative: a text for image i ({@code textForImage}) or an image for text i, drawn with
     * probability softmax(similarity) over the rows whose caption differs, or (a share {@link #RANDOM_NEGATIVES} of
     * the time) uniformly among them.
     */
    static int hardNegative(float[] logits, int i, int b, boolean textForImage, String[] captions, SplittableRandom r) {
        if (r.nextDouble() < RANDOM_NEGATIVES) {
            int j;
            int tries = 0;
            do {
                j = r.nextInt(b);
            } while (captions[j].equals(captions[i]) && ++tries < 4 * b);
            if (!captions[j].equals(captions[i])) {
                return j;
            }
        }
        double[] w = new double[b];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < b; j++) {
            max = Math.max(max, textForImage ? logits[i * b + j] : logits[j * b + i]);
        }
        double sum = 0;
        for (int j = 0; j < b; j++) {
            double l = textForImage ? logits[i * b + j] : logits[j * b + i];
            w[j] = captions[j].equals(captions[i]) ? 0 : Math.exp(l - max);
            sum += w[j];
        }
        if (sum == 0) {
            return (i + 1 + r.nextInt(b - 1)) % b;
        }
        double u = r.nextDouble() * sum;
        for (int j = 0; j < b; j++) {
            u -= w[j];
            if (u <= 0 && w[j] > 0) {
                return j;
            }
        }
        for (int j = b - 1; j >= 0; j--) {
            if (w[j] > 0) {
                return j;
            }
        }
        return (i + 1) % b;
    }
}
