package io.blip2stream.service.protocol;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.io.JsonEOFException;
import com.fasterxml.jackson.databind.JsonNode;
import io.blip2stream.engine.RequestError;

import java.io.IOException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * JSON a client sent (a request, a frame, a header, a form field, a command-line option), read in one place so that
 * every refusal says the same thing the same way: which part is not JSON, what the parser met and where, in words a
 * client can act on, never the parser's internals (its class names, its "JSON String, Number, Array ..." list, its
 * redacted source).
 */
public final class JsonInput {
    private JsonInput() {}

    private static final Pattern TOKEN = Pattern.compile("^Unrecognized token '(.*?)'", Pattern.DOTALL);
    private static final Pattern CHARACTER = Pattern.compile("^Unexpected character \\('(.*?)' \\(code (\\d+)", Pattern.DOTALL);
    private static final Pattern CONTROL = Pattern.compile("^Illegal unquoted character \\(\\(CTRL-CHAR, code (\\d+)\\)\\)");

    /**
     * Reads {@code json}; refuses what is not JSON with {@code code}, naming {@code what} (say "params" or "the
     * body").
     */
    public static JsonNode read(byte[] json, String what, String code) {
        try {
            return ResultJson.JSON.readTree(json);
        } catch (IOException e) {
            throw new RequestError(code, notJson(what, e));
        }
    }

    /** As {@link #read(byte[], String, String)}, for text. */
    public static JsonNode read(String json, String what, String code) {
        try {
            return ResultJson.JSON.readTree(json);
        } catch (IOException e) {
            throw new RequestError(code, notJson(what, e));
        }
    }

    /** "WHAT is not JSON: unexpected 'notjson' at line 1, column 1". */
    public static String notJson(String what, IOException e) {
        return what + " is not JSON: " + problem(e);
    }

    /** What the parser met, and where, in a client's words. */
    public static String problem(IOException e) {
        if (!(e instanceof JsonProcessingException j)) {
            return "it could not be read (" + ClientText.detail(e.getClass().getSimpleName()) + ")";
        }
        String m = j.getOriginalMessage() == null ? "" : j.getOriginalMessage();
        String what;
        Matcher t = TOKEN.matcher(m);
        Matcher c = CHARACTER.matcher(m);
        Matcher ctl = CONTROL.matcher(m);
        if (e instanceof JsonEOFException || m.startsWith("Unexpected end-of-input")) {
            what = "it ends before the JSON does (a missing } ] or \")";
        } else if (t.find()) {
            what = "unexpected '" + ClientText.quote(t.group(1)) + "' (text must be in double quotes)";
        } else if (c.find()) {
            int code = Integer.parseInt(c.group(2));
            what = "unexpected " + (code < 32 ? "control character " + code : code == '\'' ? "single quote (JSON takes double quotes)"
                    : "'" + ClientText.quote(c.group(1)) + "'")
                    + (m.contains("double-quote to start field name") ? " where a field name in double quotes belongs"
                    : m.contains("expected a valid value") ? " where a value belongs" : "");
        } else if (ctl.find()) {
            what = "control character " + ctl.group(1) + " inside a string (escape it)";
        } else if (m.startsWith("Unexpected close marker")) {
            what = "a closing bracket that does not match";
        } else if (m.contains("Trailing token") || m.contains("trailing token")) {
            what = "more after the JSON value";
        } else if (m.contains("nesting depth")) {
            what = "it is nested deeper than the " + ResultJson.JSON.getFactory().streamReadConstraints().getMaxNestingDepth()
                    + " levels read";
        } else if (m.contains("String value length")) {
            what = "a string in it is longer than the "
                    + ResultJson.JSON.getFactory().streamReadConstraints().getMaxStringLength() + " characters read";
        } else if (m.contains("Number value length")) {
            what = "a number in it is longer than the " + ResultJson.JSON.getFactory().streamReadConstraints().getMaxNumberLength()
                    + " digits read";
        } else if (m.contains("maximum") || m.contains("exceeds")) {
            what = "it is larger than what is read";
        } else {
            what = ClientText.detail(firstClause(m));
        }
        JsonLocation at = j.getLocation();
        if (at != null && at.getLineNr() > 0) {
            what += " at line " + at.getLineNr() + ", column " + at.getColumnNr();
        }
        return what;
    }

    /** A parser's message up to its first explanation: "Unexpected X: was expecting ..." to "unexpected X". */
    private static String firstClause(String m) {
        int cut = m.length();
        for (String stop : new String[] {": was expecting", "\n", " at [Source"}) {
            int i = m.indexOf(stop);
            if (i >= 0 && i < cut) {
                cut = i;
            }
        }
        String s = m.substring(0, cut).strip();
        return s.isEmpty() ? "malformed JSON" : Character.toLowerCase(s.charAt(0)) + s.substring(1);
    }
}
