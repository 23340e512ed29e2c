package io.blip2stream.model.generation;

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
     * @param session    a session whose prompt has been run, one row per prompt; this call closes it
     * @param promptIds  per row, the ids transformers' logits processors see as the prompt
     * @param eosTokenId the end-of-sequence token, or -1 for none
     */
    public static List<Generated> generate(DecoderSession session, int[][] promptIds, GenerationParams p,
                                           int eosTokenId, TokenListener listener) {
        if (p.numBeams() > 1) {
            try (session) {
                return BeamSearch.generate(session, promptIds, p, eosTokenId, listener);
            }
        }
        int rows = session.rows();
        Generated[] out = new Generated[rows];
        List<ContinuousBatch.RowListener> listeners = new ArrayList<>(rows);
        for (int r = 0; r < rows; r++) {
            int row = r;
            listeners.add(new ContinuousBatch.RowListener() {
                @Override
                public void onToken(int index, int tokenId) {
                    listener.onToken(row, index, tokenId);
                }

                @Override
                public boolean isCancelled() {
                    return listener.isCancelled(row);
                }

                @Override
                public void onFinish(Generated generated) {
                    out[row] = generated;
                }
            });
        }
        try (ContinuousBatch batch = new ContinuousBatch(eosTokenId)) {
            batch.add(session, promptIds, new ArrayList<>(java.util.Collections.nCopies(rows, p)), listeners);
            while (!batch.isEmpty()) {
                batch.step();
            }
        }
        return Arrays.asList(out);
    }
}
