package io.blip2stream.model.generation;

import io.blip2stream.model.text.IncrementalDecoder;
import io.blip2stream.model.text.TextTokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Beam search as transformers 5 does it ({@code GenerationMixin._beam_search}, the vectorised version): per
 * step, log-softmax then the logits processors, the running beam score added, the top {@code 2 * num_beams}
 * continuations over all beams; continuations that hit EOS or the length limit compete for the
 * {@code num_beams} finished slots with their score divided by {@code new_length ** length_penalty}; the best
 * unfinished ones run on. The early-stop heuristic and the stopping rules follow transformers, so the
 * returned ids are its ids.
 *
 * <p>Dimensions: B batch items, K beams, V vocabulary; the session holds B*K rows, item-major.
 */
final class BeamSearch {
    private static final float NEG = -1.0e9f;

    private BeamSearch() {}

    /** One beam: the whole sequence (prompt included) and its score. */
    private record Beam(int[] seq, float score, boolean finished) {}

    private record Candidate(int beam, int token, float logProb) {}

    /** Each row's listener hears its tokens, then its result, once the search ends. */
    static List<GenerationResult> generate(DecoderSession session, int[][] promptIds, GenerationParams p, int eosTokenId,
                                           List<RowListener> listeners, TextTokenizer tokenizer, long prefillNanos) {
        long start = System.nanoTime();
        int b = session.rows();
        int k = p.numBeams();
        int keep = Math.max(2, 1 + (eosTokenId >= 0 ? 1 : 0)) * k; // beams_to_keep
        // every item's prompt row is copied into its K beams
        int[] expand = new int[b * k];
        for (int i = 0; i < b * k; i++) {
            expand[i] = i / k;
        }
        float[][] prompt = session.promptLogits();
        float[][] logits = new float[b * k][];
        for (int i = 0; i < b * k; i++) {
            logits[i] = prompt[i / k];
        }
        session.reorder(expand);

        Beam[][] running = new Beam[b][k];
        Beam[][] done = new Beam[b][k];
        boolean[] heuristicUnsatisfied = new boolean[b];
        boolean[] allHitStop = new boolean[b];
        int[] promptLen = new int[b];
        for (int i = 0; i < b; i++) {
            promptLen[i] = promptIds[i].length;
            heuristicUnsatisfied[i] = true;
            for (int j = 0; j < k; j++) {
                // only the first beam is live at the start, so that K copies of one token are not all kept
                running[i][j] = new Beam(promptIds[i].clone(), j == 0 ? 0f : NEG, false);
                done[i][j] = new Beam(promptIds[i].clone(), NEG, false);
            }
        }
        boolean[] cancelled = new boolean[b]; // items whose caller stopped them: they keep their best running beam
        for (int step = 0; ; step++) {
            int[] nextTokens = new int[b * k];
            int[] parentRows = new int[b * k];
            boolean anyOpen = false;
            for (int i = 0; i < b; i++) {
                if (!cancelled[i] && heuristicUnsatisfied[i] && !allHitStop[i] && listeners.get(i).isCancelled()) {
                    cancelled[i] = true;
                }
                if (cancelled[i]) {
                    for (int j = 0; j < k; j++) { // its rows idle along until the group ends
                        nextTokens[i * k + j] = running[i][j].seq()[running[i][j].seq().length - 1];
                        parentRows[i * k + j] = i * k + j;
                    }
                    continue;
                }
                int curLen = promptLen[i] + step;
                int maxLen = promptLen[i] + p.maxNewTokens();
                // b. log-probabilities, processed, plus the running scores; c. the top continuations
                List<Candidate> top = topContinuations(logits, i, k, keep, running[i], step, p, eosTokenId);
                // d. which continuations stop here (EOS or the length limit)
                boolean[] hits = new boolean[keep];
                boolean all = true;
                for (int c = 0; c < keep; c++) {
                    hits[c] = top.get(c).token() == eosTokenId || curLen + 1 >= maxLen;
                    all &= hits[c];
                }
                allHitStop[i] = all;
                // e. the best K that did not stop run on (a stopped one only fills in, at -1e9)
                Integer[] order = new Integer[keep];
                for (int c = 0; c < keep; c++) {
                    order[c] = c;
                }
                float[] runScore = new float[keep];
                for (int c = 0; c < keep; c++) {
                    runScore[c] = top.get(c).logProb() + (hits[c] ? NEG : 0f);
                }
                Arrays.sort(order, (x, y) -> Float.compare(runScore[y], runScore[x]));
                Beam[] nextRunning = new Beam[k];
                for (int j = 0; j < k; j++) {
                    Candidate c = top.get(order[j]);
                    nextRunning[j] = new Beam(append(running[i][c.beam()].seq(), c.token()), runScore[order[j]], false);
                    nextTokens[i * k + j] = c.token();
                    parentRows[i * k + j] = i * k + c.beam();
                }
                // f. finished slots: the old ones and the top-K continuations that just stopped, best K kept
                boolean full = p.earlyStopping() == GenerationParams.EarlyStopping.TRUE && allFinished(done[i]);
                List<Beam> merged = new ArrayList<>(Arrays.asList(done[i]));
                double norm = Math.pow(curLen + 1 - promptLen[i], p.lengthPenalty());
                for (int c = 0; c < keep; c++) {
                    boolean justFinished = hits[c] && c < k;
                    float s = (float) (top.get(c).logProb() / norm);
                    if (full) {
                        s += NEG;
                    }
                    if (!heuristicUnsatisfied[i]) {
                        s += NEG;
                    }
                    if (!justFinished) {
                        s += NEG;
                    }
                    Candidate cand = top.get(c);
                    merged.add(new Beam(append(running[i][cand.beam()].seq(), cand.token()), s, justFinished));
                }
                List<Beam> best = topByScore(merged, k);
                done[i] = best.toArray(new Beam[0]);
                running[i] = nextRunning;
                // g. can a running beam still beat the worst finished one?
                int newLen = curLen + 1;
                double bestLen = p.earlyStopping() == GenerationParams.EarlyStopping.NEVER && p.lengthPenalty() > 0
                        ? maxLen - promptLen[i] : newLen - promptLen[i];
                float bestRunning = (float) (running[i][0].score() / Math.pow(bestLen, p.lengthPenalty()));
                float minDone = Float.POSITIVE_INFINITY;
                for (Beam d : done[i]) {
                    minDone = Math.min(minDone, d.score());
                }
                boolean improvable = false;
                for (Beam d : done[i]) {
                    float worst = d.finished() ? minDone : NEG;
                    improvable |= bestRunning > worst;
                }
                heuristicUnsatisfied[i] &= improvable;
                boolean open = !(allFinished(done[i]) && p.earlyStopping() == GenerationParams.EarlyStopping.TRUE);
                anyOpen |= heuristicUnsatisfied[i] && open && !allHitStop[i];
            }
            if (!anyOpen) {
                break;
            }
            session.reorder(parentRows);
            logits = session.step(nextTokens);
        }
        long decodeNanos = System.nanoTime() - start;
        List<GenerationResult> out = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            int[] seq = cancelled[i] ? running[i][0].seq() : done[i][0].seq();
            int[] gen = Arrays.copyOfRange(seq, promptLen[i], seq.length);
            IncrementalDecoder text = tokenizer == null ? null : new IncrementalDecoder(tokenizer);
            for (int t = 0; t < gen.length; t++) {
                listeners.get(i).onToken(t, gen[t], text == null ? "" : text.add(gen[t]));
            }
            if (text != null) {
                text.flush();
            }
            boolean eos = gen.length > 0 && gen[gen.length - 1] == eosTokenId;
            GenerationResult r = new GenerationResult(text == null ? "" : text.text(), gen,
                    cancelled[i] ? FinishReason.CANCELLED : eos ? FinishReason.EOS : FinishReason.LENGTH, prefillNanos, decodeNanos);
            listeners.get(i).onFinish(r);
            out.add(r);
        }
        return out;
    }

    private static List<Candidate> topContinuations(float[][] logits, int item, int k, int keep, Beam[] running,
                                                    int step, GenerationParams p, int eosTokenId) {
        int v = logits[item * k].length;
        float[] flat = new float[k * v];
        for (int j = 0; j < k; j++) {
            for (float x : logits[item * k + j]) {
                if (Float.isNaN(x)) {
                    throw new RowFailure("the model's scores for this request are not numbers (NaN) at new token " + step);
                }
            }
            float[] lp = LogitsProcessor.logSoftmax(logits[item * k + j]);
            int[] seq = running[j].seq();
            LogitsProcessor.process(lp, seq, seq.length, step, p, eosTokenId);
            float score = running[j].score();
            for (int t = 0; t < v; t++) {
                flat[j * v + t] = lp[t] + score;
            }
        }
        int[] idx = topK(flat, keep);
        List<Candidate> out = new ArrayList<>(keep);
        for (int c : idx) {
            out.add(new Candidate(c / v, c % v, flat[c]));
        }
        return out;
    }

    /** Indices of the k largest values, largest first; ties keep the lower index first. */
    static int[] topK(float[] values, int k) {
        int[] best = new int[k];
        float[] bestVal = new float[k];
        Arrays.fill(bestVal, Float.NEGATIVE_INFINITY);
        Arrays.fill(best, -1);
        for (int i = 0; i < values.length; i++) {
            float x = values[i];
            if (best[k - 1] >= 0 && !(x > bestVal[k - 1])) {
                continue;
            }
            int pos = k - 1;
            while (pos > 0 && (best[pos - 1] < 0 || x > bestVal[pos - 1])) {
                best[pos] = best[pos - 1];
                bestVal[pos] = bestVal[pos - 1];
                pos--;
            }
            best[pos] = i;
            bestVal[pos] = x;
        }
        return best;
    }

    private static List<Beam> topByScore(List<Beam> beams, int k) {
        List<Beam> sorted = new ArrayList<>(beams);
        sorted.sort((x, y) -> Float.compare(y.score(), x.score())); // stable: earlier first on ties
        return sorted.subList(0, k);
    }

    private static boolean allFinished(Beam[] beams) {
        for (Beam x : beams) {
            if (!x.finished()) {
                return false;
            }
        }
        return true;
    }

    private static int[] append(int[] seq, int token) {
        int[] s = Arrays.copyOf(seq, seq.length + 1);
        s[seq.length] = token;
        return s;
    }
}
