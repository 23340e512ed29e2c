package io.blip2stream.service;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The page tests' browser: Debian's headless Chromium and its ChromeDriver. Missing, the tests are skipped, and
 * {@link io.blip2stream.LoudSkips} names them at the end of the run with how to install it; with
 * {@code BLIP2_REQUIRE_BROWSER=1} (as {@code .ci/run} sets, after installing it) they fail instead.
 */
record Browser(Path chromium, Path chromedriver) {
    static final String INSTALL = "the page tests drive Debian's headless Chromium through ChromeDriver, and %s is not there: "
            + "apt-get install chromium chromium-driver (.ci/run installs them and sets BLIP2_REQUIRE_BROWSER=1, which makes "
            + "a missing browser a failure instead of a skip)";

    /** The browser, or the test class aborted (skipped) or failed, saying what is missing and how to install it. */
    static Browser require() {
        Browser b = new Browser(Path.of(System.getProperty("blip2.chromium", "/usr/bin/chromium")),
                Path.of(System.getProperty("blip2.chromedriver", "/usr/bin/chromedriver")));
        Path missing = !Files.isExecutable(b.chromium) ? b.chromium : !Files.isExecutable(b.chromedriver) ? b.chromedriver : null;
        if (missing != null) {
            String message = String.format(INSTALL, missing);
            String required = System.getProperty("blip2.requireBrowser", System.getenv("BLIP2_REQUIRE_BROWSER"));
            if ("1".equals(required) || "true".equals(required)) {
                throw new AssertionError(message);
            }
            Assumptions.abort(message);
        }
        return b;
    }
}
