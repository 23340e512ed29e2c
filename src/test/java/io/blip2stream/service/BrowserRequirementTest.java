package io.blip2stream.service;

import io.blip2stream.LoudSkips;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherConfig;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

/**
 * Issue 24: without Chromium the page tests are not silently skipped. A test class that needs the browser, run by the
 * JUnit Platform as Maven runs it, is skipped, and the run ends with a banner naming it and saying how to install the
 * browser; where the browser is required (CI) the same class fails with that message.
 */
class BrowserRequirementTest {

    /** Stands for WebPageTest: needs the browser before anything else (not run by Maven itself: a nested class). */
    static class NeedsTheBrowser {
        @BeforeAll
        static void browser() {
            Browser.require();
        }

        @Test
        void page() {}
    }

    record Outcome(List<TestExecutionResult.Status> statuses, String banner, String failure) {}

    static Outcome runWith(String property, String value) {
        String before = System.getProperty(property);
        System.setProperty("blip2.chromium", "/nonexistent/chromium");
        if (value != null) {
            System.setProperty(property, value);
        }
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        List<TestExecutionResult.Status> statuses = new ArrayList<>();
        StringBuilder failure = new StringBuilder();
        try {
            Launcher launcher = LauncherFactory.create(LauncherConfig.builder().enableTestExecutionListenerAutoRegistration(false).build());
            launcher.execute(LauncherDiscoveryRequestBuilder.request().selectors(selectClass(NeedsTheBrowser.class)).build(),
                    new LoudSkips(new PrintStream(buf, true, StandardCharsets.UTF_8)), new TestExecutionListener() {
                        @Override
                        public void executionFinished(TestIdentifier id, TestExecutionResult r) {
                            if (id.getDisplayName().endsWith("NeedsTheBrowser")) {
                                statuses.add(r.getStatus());
                                r.getThrowable().ifPresent(t -> failure.append(t.getMessage()));
                            }
                        }
                    });
        } finally {
            System.clearProperty("blip2.chromium");
            if (before == null) {
                System.clearProperty(property);
            } else {
                System.setProperty(property, before);
            }
        }
        return new Outcome(statuses, buf.toString(StandardCharsets.UTF_8), failure.toString());
    }

    @Test
    void withoutTheBrowserThePageTestsAreSkippedAndTheRunSaysSoAtItsEnd() {
        Outcome o = runWith("blip2.requireBrowser", "false"); // whatever BLIP2_REQUIRE_BROWSER says (CI sets it)
        assertEquals(List.of(TestExecutionResult.Status.ABORTED), o.statuses());
        assertTrue(o.banner().contains("NOT RUN: 1 test(s) or test class(es) skipped for something missing on this machine"), o.banner());
        assertTrue(o.banner().contains("NeedsTheBrowser:") && o.banner().contains("/nonexistent/chromium is not there: "
                + "apt-get install chromium chromium-driver"), o.banner());
    }

    @Test
    void whereTheBrowserIsRequiredItsAbsenceFails() {
        Outcome o = runWith("blip2.requireBrowser", "true");
        assertEquals(List.of(TestExecutionResult.Status.FAILED), o.statuses());
        assertTrue(o.failure().contains("apt-get install chromium chromium-driver"), o.failure());
        assertEquals("", o.banner(), "a failure, not a skip");
    }
}
