// blip2-stream's page: GET /v1/info for the loaded models (their cards and examples), then one WebSocket to
// /v1/stream; generate, follow and cancel frames out; accepted, token, done and error frames in. No build step, no
// libraries.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  let socket = null;
  let image = null;        // base64 of the chosen image
  let info = null;         // GET /v1/info, once read
  let current = null;      // the id shown in the output
  let ownRunning = null;   // our own request in flight (cancellable)
  let tokens = 0;
  let firstTokenAt = 0;
  let sentAt = 0;
  let everOpen = false;
  let infoAsked = false;   // GET /v1/info asked since the page loaded or the token changed

  function setStatus(text) { $('status').textContent = text; }
  function token() { return $('token').value || localStorage.getItem('blip2-token') || ''; }

  // What to do about each error the service sends, in the words of someone at the page (the codes are the API's).
  function hint(code) {
    const l = (info && info.limits) || {};
    const mb = l.max_image_bytes ? `${(l.max_image_bytes / 1048576).toFixed(0)} MB` : 'the service\'s limit';
    const px = l.max_image_pixels ? `${(l.max_image_pixels / 1e6).toFixed(0)} megapixels` : 'its pixel limit';
    const hints = {
      invalid_image: 'Pick a PNG, JPEG, BMP or GIF file: this one could not be read as an image.',
      missing_image: 'Drop an image first, or click one of the examples.',
      image_too_large: `Use a smaller image (at most ${mb} and ${px}): scale it down or save it as JPEG, then try again.`,
      record_too_large: 'The request is larger than the service takes in one message: use a smaller image.',
      message_too_large: 'The request is larger than the service takes in one WebSocket message: use a smaller image.',
      invalid_json: 'The page sent something the service could not read: reload the page.',
      invalid_request: 'The service refused the request as sent: reload the page, and check the fields.',
      duplicate_id: 'A request with this id is already known: press Generate again (it makes a new id).',
      not_cancellable: 'Only the requests this page started can be cancelled.',
      missing_question: 'Type a question first.',
      prompt_too_long: 'Shorten the prompt or the question.',
      invalid_params: `Set Max new tokens between 1 and ${l.max_new_tokens || 'the service\'s cap'}.`,
      unsupported_task: 'The loaded model does not do this task: see its tasks above, or start the service with a model that does (BLIP2_MODEL).',
      unknown_task: 'Choose Caption or Ask a question.',
      overloaded: 'The service is busy: try again in a few seconds.',
      too_many_requests: 'Wait for a running request to finish, or cancel it.',
      timeout: 'It took longer than the service\'s deadline: try again, or ask for fewer new tokens.',
      unauthorized: 'This service asks for an access token: enter it under "Access token" below.',
      forbidden: 'That request belongs to another client (another access token).',
      not_found: 'No request with that id is known: check the id, or it ended longer ago than the service keeps results.',
      internal_error: 'The service failed on this request; its log says why. Try again, or another image.',
      not_connected: 'The page is not connected to the service: it reconnects by itself; if it does not, check that `serve` is running.',
    };
    return hints[code] || '';
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const t = token();
    const url = `${scheme}://${location.host}/v1/stream` + (t ? `?access_token=${encodeURIComponent(t)}` : '');
    socket = new WebSocket(url);
    setStatus('connecting…');
    socket.onopen = () => { everOpen = true; setStatus('connected'); $('notice').hidden = true; updateButtons(); };
    socket.onclose = (e) => {
      setStatus(`disconnected (${e.code}${e.reason ? ': ' + e.reason : ''}); reconnecting…`);
      ownRunning = null;
      updateButtons();
      if (!everOpen && !infoAsked) loadInfo(); // refused at once: /v1/info says whether a token is missing
      setTimeout(connect, 1500);
    };
    socket.onerror = () => setStatus('connection error');
    socket.onmessage = (e) => onFrame(JSON.parse(e.data));
  }

  // The loaded models: their ids, tasks and cards, and the examples a click runs.
  async function loadInfo() {
    infoAsked = true;
    let res;
    try {
      const t = token();
      res = await fetch('/v1/info', { headers: t ? { Authorization: `Bearer ${t}` } : {} });
    } catch (e) {
      notice('The service does not answer: check that `serve` is running and this address is its HTTP port.');
      return;
    }
    if (res.status === 401) {
      notice(hint('unauthorized'));
      $('token-box').open = true;
      return;
    }
    if (!res.ok) { notice(`The service's model information is not available (HTTP ${res.status}).`); return; }
    info = await res.json();
    showModel(info);
  }

  function notice(text) { $('notice').textContent = text; $('notice').hidden = false; }

  function showModel(i) {
    const gen = (i.models || []).find((m) => m.tasks.includes('caption')) || (i.models || [])[0];
    if (!gen) return;
    $('model-id').textContent = gen.id;
    const others = (i.models || []).filter((m) => m !== gen).map((m) => `${m.id} (${m.tasks.join(', ')})`);
    $('model-meta').textContent = `${gen.tasks.join(', ')} · ${gen.engine} · ${gen.dtype}` + (others.length ? ` · also ${others.join(', ')}` : '');
    $('model-summary').textContent = gen.summary || 'This model has no model card (README.md in its folder).';
    const box = $('examples');
    box.innerHTML = '';
    for (const [n, x] of (gen.examples || []).entries()) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'example';
      b.dataset.index = String(n);
      b.title = x.question ? `${x.question} (expected: ${x.expected || '?'})` : (x.expected ? `expected: ${x.expected}` : x.title);
      const img = document.createElement('img');
      img.src = x.image;
      img.alt = x.title;
      const label = document.createElement('span');
      label.textContent = x.question || x.title;
      b.append(img, label);
      b.addEventListener('click', () => runExample(x));
      box.appendChild(b);
    }
    $('examples-box').hidden = box.children.length === 0;
    $('model').hidden = false;
  }

  function runExample(x) {
    setImage(x.image);
    document.querySelector(`input[name=task][value=${x.task === 'vqa' ? 'vqa' : 'caption'}]`).checked = true;
    showTaskFields();
    $('question').value = x.question || '';
    $('prompt').value = '';
    updateButtons();
    if (!$('go').disabled) $('go').click();
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) { showError('not_connected', 'not connected'); return false; }
    socket.send(JSON.stringify(frame));
    return true;
  }

  function onFrame(f) {
    if (f.id && current && f.id !== current) return;
    switch (f.type) {
      case 'accepted':
        $('request-id').textContent = f.id;
        break;
      case 'token':
        if (tokens === 0) firstTokenAt = performance.now();
        tokens++;
        $('text').textContent += f.text;
        $('text').dataset.tokens = String(tokens);
        break;
      case 'done':
        $('text').classList.remove('running');
        if (typeof f.text === 'string') $('text').textContent = f.text;
        else $('text').textContent = JSON.stringify(f.results || f, null, 1);
        showTimings(f);
        $('text').dataset.done = 'true';
        ownRunning = null;
        updateButtons();
        break;
      case 'error':
        $('text').classList.remove('running');
        showError(f.code, f.message);
        if (!f.id || f.id === ownRunning) ownRunning = null;
        updateButtons();
        break;
    }
  }

  function showTimings(f) {
    const rows = [];
    const t = f.timings || {};
    const cached = t.visual_prompt === 'cached';
    const labels = { queued_ms: 'queued', preprocess_ms: 'preprocess', vision_ms: 'vision encoder', qformer_ms: 'Q-Former',
      prefill_ms: 'prefill', decode_ms: 'decode', total_ms: 'total (server)' };
    for (const [k, label] of Object.entries(labels)) {
      if (cached && (k === 'vision_ms' || k === 'qformer_ms')) continue;
      if (k in t) rows.push([label, `${t[k].toFixed(1)} ms`]);
      if (cached && k === 'preprocess_ms') rows.push(['visual prompt', 'cached (no vision encoder or Q-Former run)']);
    }
    if (sentAt && firstTokenAt) rows.push(['first token (this page)', `${(firstTokenAt - sentAt).toFixed(1)} ms`]);
    if (sentAt) rows.push(['done (this page)', `${(performance.now() - sentAt).toFixed(1)} ms`]);
    const body = $('timings').querySelector('tbody');
    body.innerHTML = '';
    for (const [k, v] of rows) {
      const tr = document.createElement('tr');
      tr.innerHTML = `<td></td><td class="num"></td>`;
      tr.children[0].textContent = k;
      tr.children[1].textContent = v;
      body.appendChild(tr);
    }
    $('timings').hidden = rows.length === 0;
    const meta = [];
    if (f.finish_reason) meta.push(`finish: ${f.finish_reason}`);
    if (f.token_ids) meta.push(`${f.token_ids.length} tokens`);
    if (t.visual_prompt) meta.push(`visual prompt: ${t.visual_prompt}`);
    if (f.model) meta.push(`model: ${f.model}`);
    if (f.node) meta.push(`node: ${f.node}`);
    $('meta').textContent = meta.join(' · ');
  }

  function showError(code, message) {
    $('error-message').textContent = `${code}: ${message}`;
    $('error-hint').textContent = hint(code);
    $('error').hidden = false;
  }

  function reset(id) {
    current = id;
    tokens = 0;
    firstTokenAt = 0;
    $('text').textContent = '';
    $('text').dataset.tokens = '0';
    delete $('text').dataset.done;
    $('text').classList.add('running');
    $('error').hidden = true;
    $('timings').hidden = true;
    $('meta').textContent = '';
    $('request-id').textContent = id;
  }

  function task() { return document.querySelector('input[name=task]:checked').value; }

  function showTaskFields() {
    $('question').hidden = task() !== 'vqa';
    $('prompt').hidden = task() !== 'caption';
  }

  function updateButtons() {
    const open = socket && socket.readyState === WebSocket.OPEN;
    $('go').disabled = !open || !image || ownRunning !== null || (task() === 'vqa' && !$('question').value.trim());
    $('cancel').disabled = !open || ownRunning === null;
  }

  function setImage(dataUrl) {
    image = dataUrl.substring(dataUrl.indexOf(',') + 1);
    $('preview').onload = () => $('preview').classList.toggle('pixels', $('preview').naturalWidth < 160);
    $('preview').src = dataUrl;
    $('preview').hidden = false;
    $('drop-hint').hidden = true;
    $('error').hidden = true;
    updateButtons();
  }

  function pick(file) {
    if (!file) return;
    if (!file.type.startsWith('image/')) { showError('invalid_image', `${file.name} is not an image`); return; }
    const l = (info && info.limits) || {};
    if (l.max_image_bytes && file.size > l.max_image_bytes) {
      showError('image_too_large', `${file.name} is ${(file.size / 1048576).toFixed(1)} MB`);
      return;
    }
    const reader = new FileReader();
    reader.onload = () => setImage(reader.result);
    reader.readAsDataURL(file);
  }

  $('file').addEventListener('change', (e) => pick(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); pick(e.dataTransfer.files[0]); });
  for (const r of document.querySelectorAll('input[name=task]')) {
    r.addEventListener('change', () => { showTaskFields(); updateButtons(); });
  }
  $('question').addEventListener('input', updateButtons);
  $('token').addEventListener('change', () => {
    localStorage.setItem('blip2-token', $('token').value);
    everOpen = false;
    infoAsked = false;
    loadInfo();
    if (socket) socket.close();
  });

  $('go').addEventListener('click', () => {
    const id = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()));
    const frame = { type: 'generate', id, task: task(), image, params: { max_new_tokens: Number($('max-tokens').value) || 30 } };
    if (task() === 'vqa') frame.question = $('question').value.trim();
    else if ($('prompt').value.trim()) frame.prompt = $('prompt').value.trim();
    reset(id);
    sentAt = performance.now();
    if (send(frame)) { ownRunning = id; updateButtons(); }
  });
  $('cancel').addEventListener('click', () => { if (ownRunning) send({ type: 'cancel', id: ownRunning }); });
  $('follow').addEventListener('click', () => {
    const id = $('follow-id').value.trim();
    if (!id) return;
    reset(id);
    sentAt = 0;
    send({ type: 'follow', id });
  });

  loadInfo();
  connect();
})();
