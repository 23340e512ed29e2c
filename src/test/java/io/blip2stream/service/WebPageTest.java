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

/**
 * The page at / in a real browser: Debian's headless Chromium through chromedriver (.ci/run installs both).
 * Upload an image, watch the caption stream in, see the final text and the timings; see an error plainly.
 */
@Tag("broker")
@Tag("browser")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WebPageTest {

    @TempDir
    static Path tmp;
    ServiceHarness harness;
    WebDriver browser;

    @BeforeAll
    void start() throws Exception {
        Browser tools = Browser.require();
        harness = new ServiceHarness(tmp.resolve("data"), Map.of("inference.step_delay_ms", "60",
                "model.path", withCard(Fixtures.model("blip2-opt-tiny"), tmp.resolve("blip2-opt-tiny")).toString()));
        ChromeOptions o = new ChromeOptions();
        o.setBinary(tools.chromium().toFile());
        o.addArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--user-data-dir=" + tmp.resolve("chrome"), "--window-size=1100,800");
        ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(tools.chromedriver().toFile()).build();
        browser = new ChromeDriver(service, o);
    }

    static final String SUMMARY = "A random tiny BLIP-2 from transformers' test fixtures: it knows nothing, so its captions are noise.";

    /**
     * The fixture model with a model card, as {@code train} writes one: its first paragraph, and a widget with one
     * caption example (the fixture's greedy text as the expected output) and one question.
     */
    static Path withCard(Path model, Path copy) throws Exception {
        Files.createDirectories(copy.resolve("examples"));
        try (var files = Files.list(model)) {
            for (Path f : files.toList()) {
                Files.copy(f, copy.resolve(f.getFileName()));
            }
        }
        Files.copy(Fixtures.dir("blip2-opt-tiny").resolve("image1.png"), copy.resolve("examples/image1.png"));
        String expected = Fixtures.cases("blip2-opt-tiny").get(2).get("greedy_text").asText(); // image1, no prompt
        Files.writeString(copy.resolve("README.md"), "---\nwidget:\n- src: examples/image1.png\n  example_title: image 1\n"
                + "  output:\n    text: " + new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(expected) + "\n"
                + "- src: examples/image1.png\n  text: what is in the picture?\n---\n# blip2-opt-tiny\n\n" + SUMMARY + "\n\n## More\n\nNot this.\n");
        return copy;
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
        assertEquals("Pick a PNG, JPEG, BMP or GIF file: this one could not be read as an image.",
                browser.findElement(By.id("error-hint")).getText(), "the error says how to fix it");

        // too large for the service: said before anything is sent, with the limit the service reports
        Path big = tmp.resolve("big.png");
        try (var out = Files.newOutputStream(big)) {
            out.write(Files.readAllBytes(Fixtures.dir("blip2-opt-tiny").resolve("image0.png")));
            out.write(new byte[10 << 20]);
        }
        browser.findElement(By.id("file")).sendKeys(big.toAbsolutePath().toString());
        wait.until(d -> d.findElement(By.id("error-message")).getText().startsWith("image_too_large:"));
        assertEquals("Use a smaller image (at most 10 MB and 40 megapixels): scale it down or save it as JPEG, then try again.",
                browser.findElement(By.id("error-hint")).getText());
    }

    /**
     * Issue 24: on a service with bearer tokens the page says a token is needed and where to enter it (the WebSocket
     * is refused before it opens, so the page asks GET /v1/info why); with the token it connects and shows the model.
     */
    @Test
    void aServiceWithTokensSaysWhereToEnterOne() throws Exception {
        try (ServiceHarness closed = new ServiceHarness(tmp.resolve("data-closed"), Map.of("http.auth_tokens", "page-token-123456789"))) {
            browser.get("http://127.0.0.1:" + closed.service.httpPort() + "/");
            ((org.openqa.selenium.JavascriptExecutor) browser).executeScript("localStorage.removeItem('blip2-token')");
            browser.navigate().refresh();
            WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(30));
            wait.until(d -> d.findElement(By.id("notice")).isDisplayed());
            assertEquals("This service asks for an access token: enter it under \"Access token\" below.",
                    browser.findElement(By.id("notice")).getText());
            assertEquals("true", browser.findElement(By.id("token-box")).getAttribute("open"), "the token field is opened");
            assertFalse(browser.findElement(By.id("model")).isDisplayed());
            WebElement token = browser.findElement(By.id("token"));
            token.sendKeys("page-token-123456789");
            token.sendKeys(org.openqa.selenium.Keys.TAB); // change: stored, the socket and /v1/info asked again
            wait.until(d -> d.findElement(By.id("status")).getText().equals("connected"));
            wait.until(d -> d.findElement(By.id("model")).isDisplayed());
            assertFalse(browser.findElement(By.id("model-id")).getText().isEmpty());
            assertFalse(browser.findElement(By.id("notice")).isDisplayed(), "the notice goes once connected");
        } finally {
            ((org.openqa.selenium.JavascriptExecutor) browser).executeScript("localStorage.removeItem('blip2-token')");
        }
    }

    /**
     * Issue 24: the page says which model is loaded and what it knows (its card's first paragraph), with its tasks;
     * a click on an example runs it; the preview of a 64x64 image is shown large; a second run of the same image
     * says its visual prompt came from the cache instead of showing a vision encoder that took 0 ms.
     */
    @Test
    void theModelCardAndItsExamplesRunWithOneClick() throws Exception {
        browser.get("http://127.0.0.1:" + harness.service.httpPort() + "/");
        WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(30));
        wait.until(d -> d.findElement(By.id("status")).getText().equals("connected"));
        wait.until(d -> d.findElement(By.id("model")).isDisplayed());
        assertEquals("blip2-opt-tiny", browser.findElement(By.id("model-id")).getText());
        String meta = browser.findElement(By.id("model-meta")).getText();
        assertTrue(meta.startsWith("caption, vqa · tensorflow · float32") && meta.contains("blip2-itm-tiny (match, embed)"), meta);
        assertEquals(SUMMARY, browser.findElement(By.id("model-summary")).getText());
        var examples = browser.findElements(By.cssSelector("#examples .example"));
        assertEquals(2, examples.size());
        assertEquals("image 1", examples.get(0).getText());
        assertEquals("what is in the picture?", examples.get(1).getText());
        WebElement max = browser.findElement(By.id("max-tokens"));
        max.clear();
        max.sendKeys("12");
        String expected = Fixtures.cases("blip2-opt-tiny").get(2).get("greedy_text").asText();
        WebElement text = browser.findElement(By.id("text"));
        for (int run = 0; run < 2; run++) {
            browser.findElements(By.cssSelector("#examples .example")).get(0).click();
            wait.until(d -> "true".equals(d.findElement(By.id("text")).getAttribute("data-done"))
                    || d.findElement(By.id("error")).isDisplayed());
            assertFalse(browser.findElement(By.id("error")).isDisplayed(), browser.findElement(By.id("error")).getText());
            assertEquals(expected, text.getText(), "the example's caption, as its card expects");
        }
        WebElement preview = browser.findElement(By.id("preview"));
        assertTrue(preview.getSize().getWidth() >= 256, "a 64x64 image is previewed large: " + preview.getSize());
        assertTrue(browser.findElement(By.id("meta")).getText().contains("visual prompt: cached"), browser.findElement(By.id("meta")).getText());
        String timings = browser.findElement(By.id("timings")).getText();
        assertTrue(timings.contains("visual prompt cached (no vision encoder or Q-Former run)") && !timings.contains("vision encoder 0"),
                timings);
        // a question example switches the task, fills the question and runs it (a new request)
        String captionId = browser.findElement(By.id("request-id")).getText();
        browser.findElements(By.cssSelector("#examples .example")).get(1).click();
        wait.until(d -> !d.findElement(By.id("request-id")).getText().equals(captionId)
                && "true".equals(d.findElement(By.id("text")).getAttribute("data-done")));
        assertTrue(browser.findElement(By.id("meta")).getText().contains("finish: "), browser.findElement(By.id("meta")).getText());
        assertTrue(browser.findElement(By.cssSelector("input[name=task][value=vqa]")).isSelected());
        assertEquals("what is in the picture?", browser.findElement(By.id("question")).getAttribute("value"));

        var favicon = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(
                java.net.URI.create("http://127.0.0.1:" + harness.service.httpPort() + "/favicon.ico")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofByteArray());
        assertEquals(200, favicon.statusCode());
        assertTrue(favicon.body().length > 22 && favicon.body()[2] == 1 && favicon.body()[0] == 0, "an ICO file");
        Object iconLoaded = ((org.openqa.selenium.JavascriptExecutor) browser).executeAsyncScript(
                "const done = arguments[arguments.length - 1]; const i = new Image(); i.onload = () => done(i.naturalWidth); "
                        + "i.onerror = () => done(-1); i.src = document.querySelector('link[rel=icon]').href;");
        assertEquals(32L, iconLoaded, "the page's icon loads");
    }
}
