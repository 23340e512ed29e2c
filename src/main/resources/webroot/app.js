// blip2-stream's page: one WebSocket to /v1/stream; generate, follow and cancel frames out; accepted, token,
// done and error frames in. No build step, no libraries.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  let socket = null;
  let image = null;        // base64 of the chosen image
  let current = null;      // the id shown in the output
  let ownRunning = null;   // our own request in flight (cancellable)
  let tokens = 0;
  let firstTokenAt = 0;
  let sentAt = 0;

  function setStatus(text) { $('status').textContent = text; }

  function connect() {
    const token = $('token').value || localStorage.getItem('blip2-token') || '';
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/v1/stream` + (token ? `?access_token=${encodeURIComponent(token)}` : '');
    socket = new WebSocket(url);
    setStatus('connecting…');
    socket.onopen = () => { setStatus('connected'); updateButtons(); };
    socket.onclose = (e) => {
      setStatus(`disconnected (${e.code}${e.reason ? ': ' + e.reason : ''}); reconnecting…`);
      ownRunning = null;
      updateButtons();
      setTimeout(connect, 1500);
    };
    socket.onerror = () => setStatus('connection error');
    socket.onmessage = (e) => onFrame(JSON.parse(e.data));
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) { showError('not connected'); return false; }
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
        showError(`${f.code}: ${f.message}`);
        if (!f.id || f.id === ownRunning) ownRunning = null;
        updateButtons();
        break;
    }
  }

  function showTimings(f) {
    const rows = [];
    const t = f.timings || {};
    const labels = { queued_ms: 'queued', preprocess_ms: 'preprocess', vision_ms: 'vision encoder', qformer_ms: 'Q-Former',
      prefill_ms: 'prefill', decode_ms: 'decode', total_ms: 'total (server)' };
    for (const [k, label] of Object.entries(labels)) if (k in t) rows.push([label, `${t[k].toFixed(1)} ms`]);
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
    if (f.model) meta.push(`model: ${f.model}`);
    if (f.node) meta.push(`node: ${f.node}`);
    $('meta').textContent = meta.join(' · ');
  }

  function showError(message) {
    $('error').textContent = message;
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

  function updateButtons() {
    const open = socket && socket.readyState === WebSocket.OPEN;
    $('go').disabled = !open || !image || ownRunning !== null || (task() === 'vqa' && !$('question').value.trim());
    $('cancel').disabled = !open || ownRunning === null;
  }

  function pick(file) {
    if (!file) return;
    if (!file.type.startsWith('image/')) { showError(`${file.name} is not an image`); return; }
    const reader = new FileReader();
    reader.onload = () => {
      const url = reader.result;
      image = url.substring(url.indexOf(',') + 1);
      $('preview').src = url;
      $('preview').hidden = false;
      $('drop-hint').hidden = true;
      $('error').hidden = true;
      updateButtons();
    };
    reader.readAsDataURL(file);
  }

  $('file').addEventListener('change', (e) => pick(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); pick(e.dataTransfer.files[0]); });
  for (const r of document.querySelectorAll('input[name=task]')) {
    r.addEventListener('change', () => {
      $('question').hidden = task() !== 'vqa';
      $('prompt').hidden = task() !== 'caption';
      updateButtons();
    });
  }
  $('question').addEventListener('input', updateButtons);
  $('token').addEventListener('change', () => {
    localStorage.setItem('blip2-token', $('token').value);
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

  connect();
})();
