package io.blip2stream.model.generation;

import io.blip2stream.model.text.TextTokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Generation over a batch of rows that start together, with transformers' semantics: beam search
 * ({@link BeamSearch}), or greedy decoding and sampling as a {@link ContinuousBatch} that no row joins later
 * (a row that finishes leaves, so the others decode at the cost of the rows still running).
 */
public final class Generator {
    private Generator() {}

    /**
     * Each row's listener hears its tokens and its end; the results come back in row order. A row that fails alone
     * ends alone: the others finish, then its failure is thrown (callers that must keep every row use a
     * {@link ContinuousBatch}).
     *
     * @param session      a session whose prompt has been run, one row per prompt; this call closes it
     * @param promptIds    per row, the ids transformers' logits processors see as the prompt
     * @param eosTokenId   the end-of-sequence token, or -1 for none
     * @param tokenizer    decodes each row's text as it comes, or null for ids only
     * @param prefillNanos how long the prompts took (reported in each result)
     */
    public static List<GenerationResult> generate(DecoderSession session, int[][] promptIds, GenerationParams p,
                                                  int eosTokenId, TextTokenizer tokenizer, List<RowListener> listeners,
                                                  long prefillNanos) {
        if (p.numBeams() > 1) {
            try (session) {
                return BeamSearch.generate(session, promptIds, p, eosTokenId, listeners, tokenizer, prefillNanos);
            }
        }
        return generateEach(session, promptIds, java.util.Collections.nCopies(session.rows(), p), eosTokenId, tokenizer,
                listeners, prefillNanos);
    }

    /**
     * Greedy decoding or sampling, each row with its own parameters ({@code params.get(r)}: its own seed, length,
     * temperature ...), the rows decoding together; otherwise as {@link #generate}. Rows given one seed sample alike
     * (a row samples as it would alone), so rows that must differ, such as several samples of one prompt, each need
     * their own.
     */
    public static List<GenerationResult> generateEach(DecoderSession session, int[][] promptIds, List<GenerationParams> params,
                                                      int eosTokenId, TextTokenizer tokenizer, List<RowListener> listeners,
                                                      long prefillNanos) {
        int rows = session.rows();
        if (params.size() != rows || params.stream().anyMatch(q -> q.numBeams() > 1)) {
            session.close();
            throw new IllegalArgumentException(params.size() + " parameters for " + rows + " rows, each without beams");
        }
        GenerationResult[] out = new GenerationResult[rows];
        RuntimeException[] failed = new RuntimeException[1];
        List<RowListener> recording = new ArrayList<>(rows);
        for (int r = 0; r < rows; r++) {
            int row = r;
            RowListener listener = listeners.get(r);
            recording.add(new RowListener() {
                @Override
                public void onToken(int index, int tokenId, String text) {
                    listener.onToken(index, tokenId, text);
                }

                @Override
                public boolean isCancelled() {
                    return listener.isCancelled();
                }

                @Override
                public void onFinish(GenerationResult result) {
                    out[row] = result;
                    listener.onFinish(result);
                }

                @Override
                public void onError(RuntimeException cause) {
                    if (failed[0] == null) {
                        failed[0] = cause;
                    }
                    listener.onError(cause);
                }
            });
        }
        try (ContinuousBatch batch = new ContinuousBatch(eosTokenId, tokenizer)) {
            batch.add(session, promptIds, new ArrayList<>(params), recording, prefillNanos);
            while (!batch.isEmpty()) {
                batch.step();
            }
        }
        if (failed[0] != null) {
            throw failed[0];
        }
        return Arrays.asList(out);
    }
}
