package io.blip2stream.e2e;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static io.blip2stream.e2e.CommandLineIT.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code scenes}, {@code train} (a few steps of every stage of the documented recipe) and {@code evaluate}, as a user runs them. */
@Tag("e2e")
class TrainIT {
    @TempDir
    Path tmp;

    @Test
    void trainRunsAFewStepsOfEveryStageThenTheExportCaptionsAndEvaluates() throws Exception {
        CommandLineIT.Run s = run("scenes", "--count", "2", "--out", tmp.resolve("scenes").toString());
        assertEquals(0, s.exit(), s.err());
        assertTrue(Files.readString(tmp.resolve("scenes/scenes.jsonl")).contains("\"caption\""));
        Path out = tmp.resolve("run");
        CommandLineIT.Run r = run("train", "--steps", "2", "--eval-scenes", "4", "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("caption exact match"), r.out());
        for (String stage : new String[] {"vision step 2/2", "language-model step 2/2", "language-model-t5 step 2/2",
                "stage1 step 2/2 loss", "stage2 step 2/2", "stage2-t5 step 2/2"}) {
            assertTrue(r.err().contains(stage), stage + " in " + r.err());
        }
        assertTrue(!r.err().contains("ablation-"), "the ablations run only with --ablations: " + r.err());
        assertTrue(r.out().contains("BLIP-2 with T5 (stage 1 + stage 2) on 4 held-out scenes"), r.out());
        CommandLineIT.Run t5 = run("ask", "--model", out.resolve("models/blip2-scenes-t5").toString(), "--image",
                tmp.resolve("scenes/heldout-00000.png").toString(), "--question", "what color is it?", "--max-new-tokens", "3");
        assertEquals(0, t5.exit(), t5.err());
        Path model = out.resolve("models/blip2-scenes-opt");
        assertTrue(Files.readString(model.resolve("README.md")).contains("## Recipe"));
        assertTrue(Files.exists(out.resolve("report.json")));
        CommandLineIT.Run c = run("caption", "--model", model.toString(), "--image", tmp.resolve("scenes/heldout-00000.png").toString(),
                "--max-new-tokens", "3");
        assertEquals(0, c.exit(), c.err());
        CommandLineIT.Run e = run("evaluate", "--model", model.toString(), "--scenes", "3", "--engine", "pytorch");
        assertEquals(0, e.exit(), e.err());
        assertTrue(e.out().contains("recall@1"), "the retrieval model beside it is evaluated too: " + e.out());
    }
}
