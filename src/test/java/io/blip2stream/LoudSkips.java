package io.blip2stream;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Names, at the end of a test run, every test or test class that did not run because something it needs is missing
 * (an aborted assumption, such as the page tests without Chromium), with the reason, which says how to install it.
 * Surefire's summary only counts them ("Skipped: 3"); a run that silently lost its browser tests looks green. Registered
 * for every JUnit Platform launch through {@code META-INF/services}.
 */
public final class LoudSkips implements TestExecutionListener {
    private final Map<String, List<String>> byReason = new LinkedHashMap<>();
    private final PrintStream out;

    public LoudSkips() {
        this(System.err);
    }

    public LoudSkips(PrintStream out) {
        this.out = out;
    }

    @Override
    public void executionFinished(TestIdentifier id, TestExecutionResult result) {
        if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
            String reason = result.getThrowable().map(Throwable::getMessage).orElse("aborted");
            reason = reason.replaceFirst("^Assumption failed: ", "");
            byReason.computeIfAbsent(reason, r -> new ArrayList<>()).add(id.getDisplayName());
        }
    }

    @Override
    public void testPlanExecutionFinished(TestPlan plan) {
        if (byReason.isEmpty()) {
            return;
        }
        String rule = "=".repeat(100);
        StringBuilder b = new StringBuilder("\n").append(rule).append('\n');
        b.append("NOT RUN: ").append(byReason.values().stream().mapToInt(List::size).sum())
                .append(" test(s) or test class(es) skipped for something missing on this machine\n");
        byReason.forEach((reason, names) -> b.append("  ").append(String.join(", ", names)).append(":\n    ").append(reason).append('\n'));
        b.append(rule).append('\n');
        out.print(b);
        out.flush();
    }
}
