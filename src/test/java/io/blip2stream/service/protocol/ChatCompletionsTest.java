package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.engine.RequestError;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What a chat completion request asks BLIP-2, and stop strings over text that comes a token at a time. */
class ChatCompletionsTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static JsonNode json(String s) throws Exception {
        return JSON.readTree(s.replace('\'', '"'));
    }

    @Test
    void theLastImageAndTheLastUserTextAreWhatIsAsked() throws Exception {
        ChatCompletions.Request r = ChatCompletions.parse(json("{'model':'m','messages':["
                + "{'role':'system','content':'be brief'},"
                + "{'role':'user','content':[{'type':'image_url','image_url':{'url':'data:image/png;base64,AAA'}},{'type':'text','text':'first'}]},"
                + "{'role':'assistant','content':'a cat'},"
                + "{'role':'user','content':[{'type':'text','text':'what'},{'type':'text','text':'color?'}]}],"
                + "'max_tokens':7,'temperature':0.5,'top_p':0.9,'seed':3,'stop':['.', 'x'],'stream':true,'stream_options':{'include_usage':true},"
                + "'user':'ignored','n':1}"));
        assertEquals("data:image/png;base64,AAA", r.image(), "the image from an earlier turn");
        assertEquals("what color?", r.question(), "the last user message's text parts");
        assertEquals("vqa", r.task());
        assertEquals(json("{'max_new_tokens':7,'do_sample':true,'temperature':0.5,'top_p':0.9,'seed':3}"), r.params());
        assertEquals(List.of(".", "x"), r.stop());
        assertTrue(r.stream() && r.includeUsage());

        ChatCompletions.Request caption = ChatCompletions.parse(json("{'model':'m','messages':[{'role':'user','content':"
                + "[{'type':'image_url','image_url':{'url':'data:image/png;base64,AAA'}}]}],'temperature':0,'max_completion_tokens':5,'max_tokens':9}"));
        assertNull(caption.question());
        assertEquals("caption", caption.task());
        assertEquals(json("{'max_new_tokens':5}"), caption.params(), "temperature 0 is greedy; max_completion_tokens wins");
    }

    @Test
    void whatCommonClientsSendAlongIsAccepted() throws Exception {
        ChatCompletions.Request r = ChatCompletions.parse(json("{'model':'m','messages':[{'role':'system','content':'x','name':'sys'},"
                + "{'role':'assistant','content':null},{'role':'user','name':'me','content':[{'type':'text','text':'hi'},"
                + "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAA','detail':'low'}}]}],"
                + "'response_format':{'type':'text'},'logprobs':false,'tool_choice':'none','max_tokens':null,"
                + "'stream_options':{'include_usage':true},'temperature':0,'top_p':0.5,'seed':9007199254740993}"));
        assertEquals("hi", r.question());
        assertFalse(r.stream());
        assertEquals(json("{'seed':9007199254740993}"), r.params(), "temperature 0 is greedy, whatever top_p says; a 64-bit seed");
    }

    @Test
    void whatCannotBeAnsweredIsRefusedSayingWhy() {
        record Case(String body, String code, String says) {}
        String img = "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAA'}}";
        for (Case c : List.of(
                new Case("[]", RequestError.INVALID_JSON, "object"),
                new Case("{'messages':[]}", RequestError.INVALID_REQUEST, "model"),
                new Case("{'model':'m','messages':[]}", RequestError.INVALID_REQUEST, "messages"),
                new Case("{'model':'m','messages':[{'role':'system','content':'hi'}]}", RequestError.INVALID_REQUEST, "no user message"),
                new Case("{'model':'m','messages':[{'role':'robot','content':'hi'}]}", RequestError.INVALID_REQUEST, "messages[0].role"),
                new Case("{'model':'m','messages':[{'role':'user','content':'hi'}]}", RequestError.MISSING_IMAGE, "image_url"),
                new Case("{'model':'m','messages':[{'role':'user','content':[{'type':'input_audio'}]}]}", RequestError.INVALID_REQUEST,
                        "messages[0].content[0].type"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'n':3}", RequestError.INVALID_PARAMS, "n must be 1"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'temperature':5}", RequestError.INVALID_PARAMS,
                        "temperature"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'stop':['a','b','c','d','e']}",
                        RequestError.INVALID_PARAMS, "stop"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'stop':''}", RequestError.INVALID_PARAMS, "stop"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'stream':'yes'}", RequestError.INVALID_REQUEST,
                        "stream"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'response_format':{'type':'json_object'}}",
                        RequestError.INVALID_PARAMS, "response_format"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'tool_choice':'required'}",
                        RequestError.INVALID_PARAMS, "tool_choice"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'logprobs':true}", RequestError.INVALID_PARAMS,
                        "logprobs"),
                new Case("{'model':'m','messages':[{'role':'user','content':[" + img + "]}],'stop':'\\ud800'}", RequestError.INVALID_PARAMS,
                        "surrogate"))) {
            RequestError e = assertThrows(RequestError.class, () -> ChatCompletions.parse(json(c.body())), c.body());
            assertEquals(c.code(), e.code(), c.body());
            assertTrue(e.getMessage().contains(c.says()), e.getMessage());
        }
    }

    @Test
    void aStopStringSplitOverPiecesIsNeverShown() {
        StopStrings s = new StopStrings(List.of("END", "xyz"));
        List<String> shown = new ArrayList<>();
        for (String piece : List.of("a b", " E", "N", "D!", "more")) {
            shown.add(s.add(piece));
        }
        assertTrue(s.stopped());
        assertEquals("a b ", s.answer());
        assertEquals(List.of("a b", " ", "", "", ""), shown, "E and N held back: they began END");
        assertEquals("", s.rest());
    }

    @Test
    void theAnswerEndsBeforeTheFirstStopString() {
        StopStrings s = new StopStrings(List.of(" green", "<"));
        StringBuilder out = new StringBuilder();
        for (String piece : List.of("\\u00e9\\u00e9", " gr", "een", " green")) {
            out.append(s.add(piece));
        }
        assertTrue(s.stopped());
        assertEquals("\\u00e9\\u00e9", s.answer());
        assertEquals(s.answer(), out + s.rest());

        StopStrings none = new StopStrings(List.of("zz"));
        assertEquals("ab", none.add("ab"));
        assertEquals("", none.add("z"), "held back: it could begin zz");
        assertFalse(none.stopped());
        assertEquals("z", none.rest(), "no zz came: shown at the end");
    }
}
