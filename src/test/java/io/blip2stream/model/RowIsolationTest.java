package io.blip2stream.model;

import ai.djl.ndarray.NDManager;
import io.blip2stream.engine.Engines;
import io.blip2stream.model.generation.ContinuousBatch;
import io.blip2stream.model.generation.DecoderSession;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.generation.RowFailure;
import io.blip2stream.model.generation.RowListener;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 19, item 3: one bad row among seven good ones ends alone. Its scores turn to NaN in the middle of its
 * generation (as a broken model or an overflow would make them), or its listener fails (as decoding its text
 * would); the seven others, greedy and sampled, finish with exactly the ids they get alone, on both engines.
 */
class RowIsolationTest {

    static Stream<Arguments> fixturesAndEngines() {
        List<Arguments> out = new ArrayList<>();
        for (String f : List.of("blip2-opt-tiny", "blip2-flant5-tiny")) {
            for (Engines.Kind k : Engines.Kind.values()) {
                for (String fault : List.of("nan-scores", "listener-throws")) {
                    out.add(Arguments.of(f, k, fault));
                }
            }
        }
        return out.stream();
    }

    /** A session whose logits for one row (followed through reorders and merges) become NaN from a step on. */
    static final class PoisonedSession implements DecoderSession {
        private final DecoderSession inner;
        private int bad;        // the poisoned row's index now, or -1 once it left
        private final int fromStep;
        private int steps;

        PoisonedSession(DecoderSession inner, int bad, int fromStep) {
            this.inner = inner;
            this.bad = bad;
            this.fromStep = fromStep;
        }

        private float[][] poison(float[][] logits) {
            if (bad >= 0 && steps >= fromStep) {
                Arrays.fill(logits[bad], Float.NaN);
            }
            return logits;
        }

        @Override public int rows() { return inner.rows(); }
        @Override public int vocabSize() { return inner.vocabSize(); }
        @Override public float[][] promptLogits() { return poison(inner.promptLogits()); }

        @Override
        public float[][] step(int[] tokens) {
            steps++;
            return poison(inner.step(tokens));
        }

        @Override
        public void reorder(int[] rows) {
            int now = -1;
            for (int i = 0; i < rows.length; i++) {
                if (rows[i] == bad) {
                    now = i;
                }
            }
            bad = now;
            inner.reorder(rows);
        }

        @Override
        public void merge(DecoderSession other) {
            inner.merge(other instanceof PoisonedSession p ? p.inner : other);
        }

        @Override public void close() { inner.close(); }
    }

    /** Collects a row's tokens, result or error. */
    static final class Row implements RowListener {
        final List<Integer> tokens = new ArrayList<>();
        final int throwAt; // the token at which this listener fails, or -1
        int[] result;
        RuntimeException error;

        Row(int throwAt) {
            this.throwAt = throwAt;
        }

        @Override
        public void onToken(int index, int tokenId, String text) {
            if (index == throwAt) {
                throw new IllegalStateException("the text of this row cannot be decoded");
            }
            tokens.add(tokenId);
        }

        @Override
        public void onFinish(io.blip2stream.model.generation.GenerationResult g) {
            result = g.tokenIds();
        }

        @Override
        public void onError(RuntimeException cause) {
            assertNull(error, "one error per row");
            error = cause;
        }
    }

    @ParameterizedTest(name = "{0} on {1}: {2}")
    @MethodSource("fixturesAndEngines")
    void oneBadRowEndsAloneAndTheSevenOthersGetTheirOwnIds(String fixture, Engines.Kind engine, String fault) throws Exception {
        try (NDManager manager = Engines.newManager(engine);
             Blip2Model model = Blip2Model.load(Fixtures.model(fixture), manager)) {
            List<ContinuousBatchTest.Job> jobs = ContinuousBatchTest.jobs(fixture, model);
            List<GenerationRequest> requests = new ArrayList<>();
            List<GenerationParams> params = new ArrayList<>();
            // seven good rows (greedy and sampled, no EOS before 12 tokens), the bad one in the middle of them
            GenerationParams greedy = GenerationParams.builder().maxNewTokens(12).minNewTokens(12).build();
            GenerationParams sampled = GenerationParams.builder().maxNewTokens(12).minNewTokens(12).doSample(true).topK(20).seed(5L).build();
            int bad = 3;
            for (int i = 0; i < 8; i++) {
                requests.add(jobs.get(i % jobs.size()).request());
                params.add(i % 2 == 0 ? greedy : sampled);
            }
            int[][] promptIds = new int[8][];
            int[] maxNew = new int[8];
            for (int i = 0; i < 8; i++) {
                promptIds[i] = model.generation().promptIds(requests.get(i).prompt());
                maxNew[i] = 12;
            }
            List<Row> rows = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                rows.add(new Row(fault.equals("listener-throws") && i == bad ? 4 : -1));
            }
            try (ContinuousBatch batch = model.generation().newBatch()) {
                DecoderSession session = model.generation().startSession(requests, 12);
                if (fault.equals("nan-scores")) {
                    session = new PoisonedSession(session, bad, 4);
                }
                batch.add(session, processorView(model, promptIds), params, new ArrayList<>(rows), 0);
                while (!batch.isEmpty()) {
                    batch.step();
                }
            }
            Row failed = rows.get(bad);
            assertNotNull(failed.error, "the bad row ended with an error");
            assertNull(failed.result);
            if (fault.equals("nan-scores")) {
                assertInstanceOf(RowFailure.class, failed.error);
                assertTrue(failed.error.getMessage().contains("not numbers"), failed.error.getMessage());
                assertFalse(failed.error.getMessage().contains("weight"), "no internal names: " + failed.error.getMessage());
            }
            assertEquals(4, failed.tokens.size(), "the bad row's tokens before it failed");
            for (int i = 0; i < 8; i++) {
                if (i == bad) {
                    continue;
                }
                Row r = rows.get(i);
                assertNull(r.error, "row " + i);
                var alone = model.generation().generate(List.of(requests.get(i)), params.get(i)).get(0);
                assertArrayEquals(alone.tokenIds(), r.result, "row " + i + " beside the bad one, against alone");
                assertEquals(12, r.result.length);
            }
        }
    }

    /** The ids the logits processors see, as {@link Blip2Model#admit} gives them. */
    private static int[][] processorView(Blip2Model model, int[][] textIds) {
        int[][] out = new int[textIds.length][];
        for (int i = 0; i < textIds.length; i++) {
            out[i] = model.generation().processorView(textIds[i]);
        }
        return out;
    }
}
