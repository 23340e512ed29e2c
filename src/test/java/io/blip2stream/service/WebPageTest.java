package io.blip2stream.service;

import io.blip2stream.model.Fixtures;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The page at / in a real browser: Debian's headless Chromium through chromedriver (.ci/run installs both).
 * Upload an image, watch the caption stream in, see the final text and the timings; see an error plainly.
 */
@Tag("broker")
@Tag("browser")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WebPageTest {
    static final Path CHROMIUM = Path.of("/usr/bin/chromium");
    static final Path CHROMEDRIVER = Path.of("/usr/bin/chromedriver");

    @TempDir
    static Path tmp;
    ServiceHarness harness;
    WebDriver browser;

    @BeforeAll
    void start() throws Exception {
        assumeTrue(Files.isExecutable(CHROMIUM) && Files.isExecutable(CHROMEDRIVER),
                "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)");
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("inference.step_delay_ms", "60"));
        ChromeOptions o = new ChromeOptions();
        o.setBinary(CHROMIUM.toFile());
        o.addArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--user-data-dir=" + tmp.resolve("chrome"), "--window-size=1100,800");
        ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(CHROMEDRIVER.toFile()).build();
        browser = new ChromeDriver(service, o);
    }

    @AfterAll
    void stop() {
        if (browser != null) {
            browser.quit();
        }
        if (harness != null) {
            harness.close();
        }
    }

    @Test
    void uploadAnImageAndWatchTheCaptionStreamIn() throws Exception {
        browser.get("http://127.0.0.1:" + harness.service.httpPort() + "/");
        WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(30));
        wait.until(d -> d.findElement(By.id("status")).getText().equals("connected"));
        File image = Fixtures.dir("blip2-opt-tiny").resolve("image0.png").toFile();
        browser.findElement(By.id("file")).sendKeys(image.getAbsolutePath());
        wait.until(d -> d.findElement(By.id("go")).isEnabled());
        WebElement max = browser.findElement(By.id("max-tokens"));
        max.clear();
        max.sendKeys("12");
        browser.findElement(By.id("go")).click();
        WebElement text = browser.findElement(By.id("text"));
        Set<String> seen = new LinkedHashSet<>();
        long end = System.currentTimeMillis() + 30_000;
        while (!"true".equals(text.getAttribute("data-done")) && System.currentTimeMillis() < end) {
            seen.add(text.getText());
            Thread.sleep(15);
        }
        assertEquals("true", text.getAttribute("data-done"), "the caption finished");
        assertEquals("12", text.getAttribute("data-tokens"), "one token frame at a time");
        assertTrue(seen.size() >= 4, "the text grew as tokens came: " + seen);
        String expected = Fixtures.cases("blip2-opt-tiny").get(0).get("greedy_text").asText();
        assertEquals(expected, text.getText(), "the final caption");
        assertTrue(browser.findElement(By.id("timings")).isDisplayed(), "timings are shown");
        assertTrue(browser.findElement(By.id("timings")).getText().contains("vision encoder"));
        assertTrue(browser.findElement(By.id("meta")).getText().contains("finish: length"));
        assertFalse(browser.findElement(By.id("error")).isDisplayed());
    }

    @Test
    void errorsAreShownPlainly() throws Exception {
        browser.get("http://127.0.0.1:" + harness.service.httpPort() + "/");
        WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(30));
        wait.until(d -> d.findElement(By.id("status")).getText().equals("connected"));
        Path fake = Files.writeString(tmp.resolve("not-really.png"), "this is text, not a picture");
        browser.findElement(By.id("file")).sendKeys(fake.toAbsolutePath().toString());
        wait.until(d -> d.findElement(By.id("go")).isEnabled());
        browser.findElement(By.id("go")).click();
        wait.until(d -> d.findElement(By.id("error")).isDisplayed());
        String error = browser.findElement(By.id("error")).getText();
        assertTrue(error.startsWith("invalid_image:"), error);
    }
}
