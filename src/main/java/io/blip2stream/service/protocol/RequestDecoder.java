package io.blip2stream.service.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.blip2stream.engine.InferenceJob;
import io.blip2stream.engine.RequestError;
import io.blip2stream.engine.RequestTexts;
import io.blip2stream.engine.Task;
import io.blip2stream.model.generation.GenerationParams;
import io.blip2stream.model.image.ImageDecodeException;
import io.blip2stream.model.image.ImageDecoder;
import io.blip2stream.service.config.ServiceConfig;
import io.blip2stream.service.protocol.ClientText;
import org.apache.kafka.clients.consumer.ConsumerRecord;

import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Turns a request, in either of its two forms, into a validated {@link InferenceJob}, or a {@link RequestError}
 * saying what is wrong:
 * <ul>
 *   <li>a JSON object {@code {"id"?, "task", "image": "<base64>" or "image_url": "<URL>", "prompt"?, "question"?,
 *       "texts"?, "params"?, "stream"?, "deadline_ms"?}};</li>
 *   <li>raw image bytes with the fields in headers {@code blip2-task}, {@code blip2-question}, {@code blip2-prompt},
 *       {@code blip2-texts} (a JSON array), {@code blip2-params} (JSON), {@code blip2-stream},
 *       {@code blip2-deadline-ms}; or, with the header {@code blip2-image-url}, no value and the image by reference.</li>
 * </ul>
 * A record that is a CloudEvent (binary or structured mode) is read through {@link CloudEventRecords}: its data is the
 * JSON request, or the image of the raw form. An image by reference ({@link Fields#imageUrl}) is fetched by the service ({@code service.image.ImageFetcher})
 * between {@link #check}, which refuses a bad request before anything is fetched, and {@link #validate}.
 * A record is the raw form when it has a {@code blip2-task} header. The id is the request's own (the JSON
 * {@code id}, else the header {@code blip2-id}); a record without one gets {@link #recordId}, from where it is in
 * Kafka (never from its key: producers reuse keys). The image's size is checked from its header, before any pixel
 * is decoded; the texts are bounded and tokenized by {@link RequestTexts}. Runs on worker threads: it may take
 * milliseconds.
 */
public final class RequestDecoder {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The longest id a request may give itself, in characters. */
    public static final int MAX_ID_CHARS = 256;

    private final ServiceConfig.Inference inference;
    private final ServiceConfig.Limits limits;
    private final ImageDecoder probe;
    private final RequestTexts texts;
    private final RecordForms forms;

    public RequestDecoder(ServiceConfig.Inference inference, ServiceConfig.Limits limits, RequestTexts texts) {
        this.inference = inference;
        this.limits = limits;
        this.probe = new ImageDecoder(limits.maxImagePixels());
        this.texts = texts;
        this.forms = new RecordForms(this, limits.maxRecordBytes());
    }

    /**
     * The fields of a request, however they arrived.
     *
     * @param deadlineMs the request's {@code deadline_ms}: null for the default
     * @param imageUrl   the image by reference, to be fetched into {@code image}; null when none
     */
    public record Fields(String id, String task, byte[] image, String prompt, String question, JsonNode texts,
                         JsonNode params, boolean stream, Long deadlineMs, String imageUrl) {
        public Fields(String id, String task, byte[] image, String prompt, String question, JsonNode texts,
                      JsonNode params, boolean stream, Long deadlineMs) {
            this(id, task, image, prompt, question, texts, params, stream, deadlineMs, null);
        }

        /** These fields with the image fetched from {@link #imageUrl}. */
        public Fields withImage(byte[] fetched) {
            return new Fields(id, task, fetched, prompt, question, texts, params, stream, deadlineMs, null);
        }

        /** These fields with {@code id} and {@code task} set by the ingress (a path, a socket's own id). */
        public Fields as(String id, String task) {
            return new Fields(id, task, image, prompt, question, texts, params, stream, deadlineMs, imageUrl);
        }
    }

    /**
     * The id of a Kafka record that gives none of its own: where it is in Kafka ({@code topic-partition-offset}) and
     * when it was written, so a redelivery of the record keeps it, and no other record, not even one of the same
     * topic created again, has it.
     */
    public static String recordId(ConsumerRecord<?, ?> r) {
        return r.topic() + "-" + r.partition() + "-" + r.offset() + "@" + r.timestamp();
    }

    /** A Kafka record (any shape: null key, value or header values, duplicate or binary headers) to a job. */
    public InferenceJob decodeRecord(ConsumerRecord<byte[], byte[]> record, long acceptedNanos) {
        return validate(recordFields(record), acceptedNanos);
    }

    /**
     * A record's value and request headers (by lower-case name) to a job.
     *
     * @param recordId the id the record has when it gives none of its own
     */
    public InferenceJob decodeRecord(byte[] value, Map<String, byte[]> headers, String recordId, long acceptedNanos) {
        return validate(forms.fields(value, headers, recordId, headers.containsKey("blip2-task")), acceptedNanos);
    }

    /** A Kafka record's fields (any shape: null key, value or header values, duplicate or binary headers). */
    public Fields recordFields(ConsumerRecord<byte[], byte[]> record) {
        return forms.fields(record);
    }

    /** A JSON request (Kafka JSON form, HTTP, WebSocket) to its fields; the id falls back to {@code defaultId}. */
    public Fields fromJson(byte[] value, String defaultId) {
        // "the value" for a Kafka record; HTTP and WebSocket name their own part before they get here
        return fromJson(JsonInput.read(value, "the value (with no blip2-task header for the raw form)", RequestError.INVALID_JSON),
                defaultId);
    }

    public Fields fromJson(JsonNode n, String defaultId) {
        if (n == null || !n.isObject()) {
            throw new RequestError(RequestError.INVALID_JSON, "the request must be a JSON object");
        }
        String id = text(n, "id");
        byte[] image = null;
        JsonNode img = n.get("image");
        if (img != null && !img.isNull()) {
            if (!img.isTextual()) {
                throw new RequestError(RequestError.INVALID_IMAGE, "image must be a base64 string");
            }
            image = base64Image("image", img.asText());
        }
        String imageUrl = text(n, "image_url");
        if (imageUrl != null && imageUrl.isBlank()) {
            imageUrl = null;
        }
        if (imageUrl != null && (image == null || image.length == 0) && imageUrl.strip().regionMatches(true, 0, "data:", 0, 5)) {
            image = base64Image("image_url", imageUrl.strip()); // inline after all: decoded here, on this worker thread
            imageUrl = null;
        }
        if (imageUrl != null && image != null && image.length > 0) {
            throw new RequestError(RequestError.INVALID_REQUEST, "the request has both image and image_url: send one");
        }
        JsonNode stream = n.get("stream");
        if (stream != null && !stream.isNull() && !stream.isBoolean()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "stream must be true or false");
        }
        return new Fields(id != null ? id : defaultId, text(n, "task"), image, text(n, "prompt"), text(n, "question"),
                n.get("texts"), n.get("params"), stream != null && stream.asBoolean(), deadlineMs(n.get("deadline_ms")),
                imageUrl == null ? null : imageUrl.strip());
    }

    /** The checkpoints' text sides this decoder tokenizes for (their names, their visual prompt's length). */
    public RequestTexts texts() {
        return texts;
    }

    /** An image given as base64, or as a {@code data:} URL with a base64 payload (whitespace is ignored). */
    public static byte[] base64Image(String field, String b64) {
        int comma = b64.regionMatches(true, 0, "data:", 0, 5) ? b64.indexOf(',') : -1;
        try {
            return Base64.getDecoder().decode((comma >= 0 ? b64.substring(comma + 1) : b64).replaceAll("\\s", ""));
        } catch (IllegalArgumentException e) {
            throw new RequestError(RequestError.INVALID_IMAGE, field + " is not valid base64: " + ClientText.detail(e.getMessage()));
        }
    }

    /**
     * Checks the fields and builds the job; an absent id becomes a new UUID. A refusal names the request's id once
     * that is known to be a valid one ({@link RequestError#requestId}).
     */
    public InferenceJob validate(Fields f, long acceptedNanos) {
        if (f.imageUrl() != null) {
            throw new IllegalStateException("the image at image_url was not fetched"); // the ingress fetches it first
        }
        String id = f.id() == null || f.id().isEmpty() ? UUID.randomUUID().toString() : checkId(f.id());
        try {
            return validate(id, f, acceptedNanos, false);
        } catch (RequestError e) {
            throw e.forRequest(id);
        }
    }

    /**
     * Every check {@link #validate} makes but those of the image, for a request whose image is still to be fetched
     * from {@link Fields#imageUrl}: a request refused anyway fetches nothing.
     *
     * @return the request's id, as {@link #validate} will give it
     */
    public String check(Fields f) {
        String id = f.id() == null || f.id().isEmpty() ? UUID.randomUUID().toString() : checkId(f.id());
        try {
            validate(id, f, System.nanoTime(), true);
            return id;
        } catch (RequestError e) {
            throw e.forRequest(id);
        }
    }

    /** @param imageToCome the image is fetched later: not required or checked now, and no job built (null) */
    private InferenceJob validate(String id, Fields f, long acceptedNanos, boolean imageToCome) {
        if (f.task() == null) {
            throw new RequestError(RequestError.UNKNOWN_TASK, "task is missing (caption, vqa, match or embed)");
        }
        Task task = Task.parse(f.task());
        if (task == null) {
            throw new RequestError(RequestError.UNKNOWN_TASK, "unknown task '" + ClientText.quote(f.task()) + "' (caption, vqa, match or embed)");
        }
        byte[] image = f.image();
        if (image != null && image.length == 0) {
            image = null;
        }
        List<String> texts = texts(f.texts());
        if (image == null && !imageToCome && (task != Task.EMBED || texts.isEmpty())) {
            throw new RequestError(RequestError.MISSING_IMAGE, task == Task.EMBED
                    ? "embed needs an image, texts or both" : "task " + task.wireName() + " needs an image");
        }
        if (image != null) {
            checkImage(image);
        }
        String question = f.question();
        if (task == Task.VQA && (question == null || question.isBlank())) {
            throw new RequestError(RequestError.MISSING_QUESTION, "task vqa needs a question");
        }
        if (task == Task.MATCH && texts.isEmpty()) {
            throw new RequestError(RequestError.MISSING_TEXTS, "task match needs texts, a non-empty array of strings");
        }
        if (texts.size() > inference.maxTexts()) {
            throw new RequestError(RequestError.TOO_MANY_TEXTS, texts.size() + " texts; the limit is " + inference.maxTexts());
        }
        GenerationParams params = task.generates() ? params(f.params()) : null;
        long deadlineMs = f.deadlineMs() != null ? f.deadlineMs() : inference.defaultDeadlineMs();
        // last: the cheap checks first, and the tokenizer only sees texts that passed them
        RequestTexts.Encoded encoded = this.texts.encode(task, f.prompt(), question, texts, params);
        if (imageToCome) {
            return null;
        }
        return InferenceJob.of(id, task, image, f.prompt(), question, texts, encoded, params, f.stream() && task.generates(),
                acceptedNanos, InferenceJob.deadline(acceptedNanos, deadlineMs));
    }

    /**
     * A request's own id: at most {@link #MAX_ID_CHARS} characters of text, no control characters (it goes into
     * logs, headers and URLs), not blank.
     */
    public static String checkId(String id) {
        if (id.length() > MAX_ID_CHARS) {
            throw new RequestError(RequestError.INVALID_REQUEST, "id is longer than " + MAX_ID_CHARS + " characters");
        }
        if (id.isBlank()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "id is blank");
        }
        for (int i = 0; i < id.length(); i++) {
            char c = id.charAt(i);
            if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029') {
                throw new RequestError(RequestError.INVALID_REQUEST, "id holds a control character at character " + i);
            }
        }
        int lone = RequestTexts.loneSurrogate(id);
        if (lone >= 0) {
            throw new RequestError(RequestError.INVALID_REQUEST, "id holds a lone UTF-16 surrogate at character " + lone);
        }
        return id;
    }

    /**
     * {@code deadline_ms}: how many milliseconds after the service accepted the request it may still start work
     * and generate; a positive integer no larger than {@code inference.request_timeout_ms}. Null: not given.
     */
    public Long deadlineMs(JsonNode v) {
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isIntegralNumber() || !v.canConvertToLong()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "deadline_ms must be an integer number of milliseconds, got " + ClientText.quote(v));
        }
        return checkDeadline(v.asLong());
    }

    /** {@code deadline_ms} from a header or a form field. */
    public Long deadlineMs(String v) {
        if (v == null || v.isBlank()) {
            return null;
        }
        try {
            return checkDeadline(Long.parseLong(v.trim()));
        } catch (NumberFormatException e) {
            throw new RequestError(RequestError.INVALID_REQUEST, "deadline_ms must be an integer number of milliseconds, got '"
                    + ClientText.quote(v) + "'");
        }
    }

    private long checkDeadline(long ms) {
        if (ms <= 0) {
            throw new RequestError(RequestError.INVALID_REQUEST, "deadline_ms must be positive, got " + ms);
        }
        if (ms > inference.requestTimeoutMs()) {
            throw new RequestError(RequestError.INVALID_REQUEST, "deadline_ms " + ms + " is above the limit of "
                    + inference.requestTimeoutMs() + " (inference.request_timeout_ms)");
        }
        return ms;
    }

    private void checkImage(byte[] image) {
        if (image.length > limits.maxImageBytes()) {
            throw new RequestError(RequestError.IMAGE_TOO_LARGE, "the image has " + image.length + " bytes; the limit is "
                    + limits.maxImageBytes());
        }
        try {
            // decoded whole (kept small) here, off the event loop and before the request queues for the model: a
            // bad image is refused at once, not after the requests ahead of it
            probe.validate(image);
        } catch (ImageDecodeException e) {
            String m = e.getMessage();
            throw new RequestError(m.contains("exceeds the limit") ? RequestError.IMAGE_TOO_LARGE : RequestError.INVALID_IMAGE, m, e);
        }
    }

    private static List<String> texts(JsonNode t) {
        List<String> out = new ArrayList<>();
        if (t == null || t.isNull()) {
            return out;
        }
        if (!t.isArray()) {
            throw new RequestError(RequestError.MISSING_TEXTS, "texts must be an array of strings");
        }
        for (JsonNode e : t) {
            if (!e.isTextual() || e.asText().isBlank()) {
                throw new RequestError(RequestError.MISSING_TEXTS, "texts must be non-empty strings");
            }
            out.add(e.asText());
        }
        return out;
    }

    /** Generation parameters with transformers' names ({@link GenerationParamsJson}), under this service's limits. */
    GenerationParams params(JsonNode p) {
        return GenerationParamsJson.read(p, inference.defaultMaxNewTokens(), inference.maxNewTokensCap());
    }

    private static String text(JsonNode n, String field) {
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isTextual()) {
            throw new RequestError(RequestError.INVALID_REQUEST, field + " must be a string");
        }
        return v.asText();
    }

}
