package io.blip2stream.train;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 24: the examples {@code train} puts in a generation card are the shipped scene models', byte for byte. */
class ModelCardExamplesTest {
    @TempDir
    Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {"models/blip2-scenes-opt", "models/blip2-scenes-t5"})
    void theShippedCardsExamplesAreWhatTrainWrites(String model) throws Exception {
        String header = ModelCard.examplesHeader(tmp);
        Path shipped = Path.of(model);
        String card = Files.readString(shipped.resolve("README.md"));
        assertTrue(card.startsWith(header), shipped + "/README.md starts with the header train writes:\n" + header);
        try (var files = Files.list(tmp.resolve("examples"))) {
            for (Path f : files.toList()) {
                assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(shipped.resolve("examples").resolve(f.getFileName())),
                        f.getFileName().toString());
            }
        }
        try (var files = Files.list(shipped.resolve("examples"))) {
            assertEquals(8, files.count());
        }
    }
}
