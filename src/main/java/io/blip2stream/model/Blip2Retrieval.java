package io.blip2stream.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import io.blip2stream.model.config.Blip2Config;
import io.blip2stream.model.nn.AttentionMask;
import io.blip2stream.model.nn.Linear;
import io.blip2stream.model.nn.Ops;
import io.blip2stream.model.qformer.Blip2QFormerModel;
import io.blip2stream.model.qformer.Blip2TextEmbeddings;
import io.blip2stream.model.text.TextTokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * The heads of {@code Blip2ForImageTextRetrieval}: image-text matching (ITM) and contrastive scores (ITC) of texts
 * against an image, and text embeddings for vector search. The image side (vision encoder, Q-Former over the
 * queries, image embeddings) is {@link Blip2Model}'s.
 *
 * <p>Dimensions: B texts, S image tokens, E vision hidden, Q queries, D Q-Former hidden, T text length, P
 * embedding size.
 */
public final class Blip2Retrieval {
    /** An image-text pair scored by the retrieval heads. */
    public record MatchResult(String text, float[] itmLogits, double itmProbability, double itcScore) {}

    /** The parts only retrieval checkpoints have. */
    record Heads(Blip2TextEmbeddings embeddings, Linear visionProjection, Linear textProjection, Linear itmHead) {}

    private final Blip2Model model; // the image side
    private final Blip2Config config;
    private final TextTokenizer tokenizer;
    private final Blip2QFormerModel qformer;
    private final Heads retrieval;
    private final NDManager manager;

    Blip2Retrieval(Blip2Model model, Blip2QFormerModel qformer, Heads heads, NDManager manager) {
        this.model = model;
        this.config = model.config();
        this.tokenizer = model.tokenizer();
        this.qformer = qformer;
        this.retrieval = heads;
        this.manager = manager;
    }

    /** P, the size of retrieval embeddings. */
    public int embeddingSize() {
        return config.imageTextHiddenSize();
    }

    /** The most tokens a text may have (the Q-Former's text positions); a longer one is refused. */
    public int maxTextTokens() {
        return retrieval.embeddings().maxPositions();
    }

    /**
     * Scores each text against one image, in the order given: ITM (queries and text together through the
     * Q-Former, cross-attending to the image; the ITM head averaged over query positions; the match probability
     * is the softmax's second value) and ITC (the best cosine over queries between the normalised projected query
     * outputs and the normalised projected [CLS] output of the text alone).
     */
    public List<MatchResult> match(float[] pixelValues, List<String> texts) {
        return match(pixelValues, texts, encodeTexts(texts));
    }

    /** {@link #match(float[], List)} with the texts tokenized already ({@link #encodeTexts}). */
    public List<MatchResult> match(float[] pixelValues, List<String> texts, List<int[]> textIds) {
        if (texts.isEmpty()) {
            return List.of();
        }
        int b = texts.size();
        int q = config.numQueryTokens();
        int p = config.imageTextHiddenSize();
        try (NDManager scope = manager.newSubManager()) {
            NDArray image = model.vision(scope, List.of(pixelValues));                                  // (1, S, E)
            float[] imageEmbeds = Blip2Model.normalize(retrieval.visionProjection()
                    .forward(qformer.forward(model.queries(scope, 1), image))).toFloatArray();        // (1, Q, P)
            Text text = text(scope, textIds);
            // ITM: [queries, text] with the text's padding masked
            int l = text.length();
            float[] mask = AttentionMask.padding(text.mask(), q);                                  // (B, Q + T)
            NDArray joint = NDArrays.concat(new NDList(model.queries(scope, b), text.embeddings()), 1); // (B, Q + T, D)
            NDArray images = image.broadcast(new Shape(b, image.getShape().get(1), image.getShape().get(2))); // (B, S, E)
            NDArray out = qformer.forward(joint, q, Ops.create(scope, mask, b, 1, 1, q + l), images);    // (B, Q + T, D)
            float[] itm = retrieval.itmHead().forward(out.get(new NDIndex(":, :{}, :", q)))
                    .mean(new int[] {1}).toFloatArray();                                       // (B, 2)
            float[] textEmbeds = textEmbeds(text);                                               // (B, P)
            List<MatchResult> results = new ArrayList<>(b);
            for (int i = 0; i < b; i++) {
                float a = itm[2 * i];
                float c = itm[2 * i + 1];
                double prob = 1.0 / (1.0 + Math.exp(a - c));
                double best = Double.NEGATIVE_INFINITY;
                for (int k = 0; k < q; k++) {
                    double dot = 0;
                    for (int j = 0; j < p; j++) {
                        dot += imageEmbeds[k * p + j] * textEmbeds[i * p + j];
                    }
                    best = Math.max(best, dot);
                }
                results.add(new MatchResult(texts.get(i), new float[] {a, c}, prob, best));
            }
            return results;
        }
    }

    /** transformers' {@code text_embeds}: the normalised projected [CLS] output of each text, [B, P]. */
    public float[] embedTexts(List<String> texts) {
        return embedTextIds(encodeTexts(texts));
    }

    /** {@link #embedTexts} with the texts tokenized already ({@link #encodeTexts}). */
    public float[] embedTextIds(List<int[]> textIds) {
        try (NDManager scope = manager.newSubManager()) {
            return textEmbeds(text(scope, textIds));
        }
    }

    /** Each text's ids, with the tokenizer's special tokens ([CLS] ... [SEP] for the Q-Former's WordPiece). */
    public List<int[]> encodeTexts(List<String> texts) {
        List<int[]> ids = new ArrayList<>(texts.size());
        for (String t : texts) {
            ids.add(tokenizer.encode(t));
        }
        return ids;
    }

    private float[] textEmbeds(Text text) {
        int b = text.mask().length;
        int l = text.length();
        float[] mask = AttentionMask.padding(text.mask(), 0); // (B, T)
        NDManager scope = text.embeddings().getManager();
        NDArray out = qformer.forward(text.embeddings(), 0, Ops.create(scope, mask, b, 1, 1, l), null); // (B, T, D)
        NDArray cls = out.get(new NDIndex(":, 0, :"));                                                    // (B, D)
        return Blip2Model.normalize(retrieval.textProjection().forward(cls)).toFloatArray();                        // (B, P)
    }

    /** Tokenised texts, right-padded: embeddings [B, T, D] and the mask. */
    private record Text(NDArray embeddings, int[][] mask, int length) {}

    private Text text(NDManager scope, List<int[]> textIds) {
        int b = textIds.size();
        int[][] ids = textIds.toArray(new int[0][]);
        int l = 0;
        for (int i = 0; i < b; i++) {
            l = Math.max(l, ids[i].length);
        }
        int max = retrieval.embeddings().maxPositions();
        if (l > max) {
            throw new IllegalArgumentException("text of " + l + " tokens exceeds the Q-Former's " + max + " positions");
        }
        int d = config.qformer().hiddenSize();
        float[] emb = new float[b * l * d];
        int[][] mask = new int[b][l];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < l; j++) {
                boolean real = j < ids[i].length;
                retrieval.embeddings().embed(real ? ids[i][j] : config.qformer().padTokenId(), j, emb, (i * l + j) * d);
                mask[i][j] = real ? 1 : 0;
            }
        }
        return new Text(Ops.create(scope, emb, b, l, d), mask, l);
    }
}
