package io.blip2stream;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/** The model and the engine code know nothing of Vert.x, so they run anywhere, tests and benchmarks included. */
class ArchitectureTest {
    private final JavaClasses classes = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages("io.blip2stream");

    @Test
    void modelAndEngineDoNotUseVertx() {
        noClasses().that().resideInAnyPackage("io.blip2stream.model..", "io.blip2stream.engine..")
                .should().dependOnClassesThat().resideInAnyPackage("io.vertx..")
                .check(classes);
    }

    @Test
    void modelDoesNotDependOnTheCommandLine() {
        noClasses().that().resideInAnyPackage("io.blip2stream.model..", "io.blip2stream.engine..")
                .should().dependOnClassesThat().resideInAnyPackage("io.blip2stream.cli..", "picocli..")
                .check(classes);
    }
}
