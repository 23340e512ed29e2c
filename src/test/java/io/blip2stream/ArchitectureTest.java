package io.blip2stream;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What each package may depend on (ARCHITECTURE.md draws it): the model and the engine know nothing of Vert.x, the
 * cluster, the service or the command line, so they run anywhere, tests and benchmarks included; the cluster layer
 * knows nothing of the service; TensorFlow below DJL is reached from one package; and no two packages depend on
 * each other, directly or round a loop.
 */
class ArchitectureTest {
    static final JavaClasses CLASSES = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .importPackages("io.blip2stream");

    /** Every package of ours, each its own slice: none may reach itself again through others. */
    static final ArchRule NO_PACKAGE_CYCLES = slices().matching("io.blip2stream.(**)").should().beFreeOfCycles();

    /** TensorFlow's C API and DJL's TensorFlow engine, only from {@code model.nn.tf}. */
    static final ArchRule TENSORFLOW_IN_ONE_PACKAGE = noClasses().that().resideOutsideOfPackage("io.blip2stream.model.nn.tf..")
            .should().dependOnClassesThat().resideInAnyPackage("org.tensorflow..", "ai.djl.tensorflow..")
            .because("TensorFlow's internal C API changes between releases: one package to port");

    @Test
    void modelAndEngineDoNotUseVertx() {
        noClasses().that().resideInAnyPackage("io.blip2stream.model..", "io.blip2stream.engine..")
                .should().dependOnClassesThat().resideInAnyPackage("io.vertx..")
                .check(CLASSES);
    }

    @Test
    void modelDoesNotDependOnTheCommandLine() {
        noClasses().that().resideInAnyPackage("io.blip2stream.model..", "io.blip2stream.engine..")
                .should().dependOnClassesThat().resideInAnyPackage("io.blip2stream.cli..", "picocli..")
                .check(CLASSES);
    }

    @Test
    void packagesAreFreeOfCycles() {
        NO_PACKAGE_CYCLES.check(CLASSES);
    }

    @Test
    void tensorflowBelowDjlIsReachedFromOnePackage() {
        TENSORFLOW_IN_ONE_PACKAGE.check(CLASSES);
    }

    @Test
    void layersDependOnlyDownwards() {
        noClasses().that().resideInAPackage("io.blip2stream.common..")
                .should().dependOnClassesThat().resideOutsideOfPackages("io.blip2stream.common..", "java..")
                .check(CLASSES);
        noClasses().that().resideInAPackage("io.blip2stream.model..")
                .should().dependOnClassesThat().resideInAnyPackage("io.blip2stream.engine..", "io.blip2stream.cluster..",
                        "io.blip2stream.service..", "io.blip2stream.train..", "io.blip2stream.bench..", "io.blip2stream.loadtest..")
                .check(CLASSES);
        noClasses().that().resideInAPackage("io.blip2stream.engine..")
                .should().dependOnClassesThat().resideInAnyPackage("io.blip2stream.cluster..", "io.blip2stream.service..",
                        "io.blip2stream.train..", "io.blip2stream.bench..", "io.blip2stream.loadtest..")
                .check(CLASSES);
        noClasses().that().resideInAPackage("io.blip2stream.cluster..")
                .should().dependOnClassesThat().resideInAnyPackage("io.blip2stream.service..", "io.blip2stream.cli..")
                .because("the cluster layer has settings of its own (ClusterSettings), filled by the service")
                .check(CLASSES);
        noClasses().that().resideInAPackage("io.blip2stream.service..")
                .should().dependOnClassesThat().resideInAnyPackage("io.blip2stream.cli..", "io.blip2stream.train..",
                        "io.blip2stream.bench..", "io.blip2stream.loadtest..")
                .check(CLASSES);
    }

    /** The rules catch what they are for: a loop between two packages, and the C API used from elsewhere. */
    @Test
    void theRulesFailOnAViolation() {
        JavaClasses broken = new ClassFileImporter().importPackages("io.blip2stream.archviolation");
        AssertionError cycle = assertThrows(AssertionError.class, () -> NO_PACKAGE_CYCLES.check(broken));
        assertTrue(cycle.getMessage().contains("Cycle detected: Slice archviolation.a") && cycle.getMessage().contains("Downstream.back"),
                cycle.getMessage());
        AssertionError tf = assertThrows(AssertionError.class, () -> TENSORFLOW_IN_ONE_PACKAGE.check(broken));
        assertTrue(tf.getMessage().contains("org.tensorflow.internal.c_api.TF_Status"), tf.getMessage());
    }

    @Test
    void noClassReachesIntoVertxInternals() {
        noClasses().should().dependOnClassesThat().resideInAnyPackage("io.vertx.core.internal..", "io.vertx.core.impl..")
                .because("Vert.x's internals change without notice; what a verticle needs from the cluster, the service passes in")
                .check(CLASSES);
    }

    @Test
    void onlyTheServiceRootAssemblesTheServicesPackages() {
        noClasses().that().resideInAPackage("io.blip2stream.service.(*)..")
                .should().dependOnClassesThat().resideInAPackage("io.blip2stream.service")
                .because("io.blip2stream.service holds only Blip2Service, which deploys the rest")
                .check(CLASSES);
    }

    /**
     * Tests mirror the main packages: a test sits in the package of what it tests. The tests of the packaged jar
     * ({@code *IT}, run by failsafe against {@code target/blip2-stream.jar}) are the one exception, all of them in
     * {@code e2e}, and no other test is named so.
     */
    @Test
    void testsMirrorTheMainPackagesAndJarTestsAreInE2e() {
        JavaClasses tests = new ClassFileImporter().withImportOption(ImportOption.Predefined.ONLY_INCLUDE_TESTS)
                .importPackages("io.blip2stream");
        com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes().that().haveSimpleNameEndingWith("IT")
                .should().resideInAPackage("io.blip2stream.e2e").check(tests);
        java.util.Set<String> main = new java.util.TreeSet<>();
        CLASSES.forEach(c -> main.add(c.getPackageName()));
        java.util.Set<String> astray = new java.util.TreeSet<>();
        tests.forEach(c -> {
            String pkg = c.getPackageName();
            if (!main.contains(pkg) && !pkg.equals("io.blip2stream") // the root: tests of the whole code, as this one
                    && !pkg.startsWith("io.blip2stream.e2e") && !pkg.startsWith("io.blip2stream.archviolation")) {
                astray.add(pkg);
            }
        });
        assertEquals(java.util.Set.of(), astray, "test packages with no main package of that name");
    }
}
