// mvgen create page: idea → scenes → character reference → one video per scene.
// Talks only to /api/mv/* on the same origin. Plain DOM, no framework, no build step. Every piece of
// server text goes in through textContent, never innerHTML.
'use strict';

(() => {
  const API = '/api/mv';
  const KEY_STORE = 'mvgen.apiKey';
  const FLAVOR_STORE = 'mvgen.configFlavor';
  const SESSION_STORE = 'mvgen.session';
  // Browsers open at most 6 HTTP/1.1 connections per origin and a job's event stream holds one for
  // the whole render, so at most this many cards stream; the others read their job every POLL_MS
  // and take a stream when one frees up. The rest stay free for images, videos and the buttons.
  const MAX_STREAMS = 3;
  const POLL_MS = 2000;

  const $ = (selector) => document.querySelector(selector);

  const state = {
    flavors: new Map(),
    scenes: [],
    referenceId: null,
    referenceLabel: '',
    // Bumped by each "Generate scenes"; answers for an older run are dropped instead of drawn.
    run: 0,
    // True while "Render all videos" is submitting its jobs.
    rendering: false,
  };

  document.addEventListener('DOMContentLoaded', () => {
    $('#config-toggle').addEventListener('click', toggleConfig);
    $('#config-flavor').addEventListener('change', onFlavorChange);
    $('#create-form').addEventListener('submit', generateScenes);
    $('#generate-character').addEventListener('click', generateCharacter);
    $('#generate-videos').addEventListener('click', renderAllVideos);
    for (const radio of document.querySelectorAll('input[name="generation-mode"]')) {
      radio.addEventListener('change', onModeChange);
    }
    for (const id of ['video-description', 'character-description']) {
      $(`#${id}`).addEventListener('input', () => hideError($(`#${id}-error`)));
    }
    loadFlavors();
    restoreSession();
  });

  // ---- Configuration -------------------------------------------------------------------------

  function toggleConfig() {
    const button = $('#config-toggle');
    const open = button.getAttribute('aria-expanded') !== 'true';
    button.setAttribute('aria-expanded', String(open));
    $('#config-section').hidden = !open;
  }

  async function loadFlavors() {
    const select = $('#config-flavor');
    select.disabled = true;
    select.replaceChildren(new Option('Loading…', 'default'));
    describeFlavor();
    try {
      const { data } = await api('/get_config_flavors');
      const names = Array.isArray(data.flavors) ? data.flavors.filter((n) => typeof n === 'string') : [];
      if (names.length === 0) throw new Error('the server listed no flavors.');
      const details = Array.isArray(data.details) ? data.details : [];
      state.flavors = new Map(details.filter((d) => d && d.name).map((d) => [d.name, d]));
      select.replaceChildren(...names.map((name) => new Option(state.flavors.get(name)?.label || name, name)));
      const remembered = load(FLAVOR_STORE);
      const serverDefault = names.includes(data.default) ? data.default : names.includes('default') ? 'default' : names[0];
      select.value = names.includes(remembered) ? remembered : serverDefault;
      showLiveDiagnostics(data.live);
    } catch (err) {
      state.flavors = new Map();
      select.replaceChildren(new Option('default', 'default'));
      select.value = 'default';
      showError($('#config-flavor-error'), `Could not load the config flavors (${err.message.replace(/\.$/, '')}). Using “default”.`);
    } finally {
      select.disabled = false;
      describeFlavor();
    }
  }

  // With `serve --configs DIR`, an edit that does not compile leaves the last good flavors served;
  // list the compiler's file:line:col lines so the author sees why their edit is not live.
  function showLiveDiagnostics(live) {
    const notice = $('#live-configs');
    const diagnostics = live && Array.isArray(live.diagnostics) ? live.diagnostics.filter((d) => typeof d === 'string') : [];
    if (diagnostics.length === 0) {
      notice.hidden = true;
      return;
    }
    $('#live-configs-summary').textContent =
      `The configs in ${String(live.dir)} do not compile; the server still uses the last good version (generation ${Number(live.generation)}):`;
    $('#live-configs-diagnostics').replaceChildren(...diagnostics.map((d) => {
      const item = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = d;
      item.append(code);
      return item;
    }));
    notice.hidden = false;
  }

  function onFlavorChange() {
    save(FLAVOR_STORE, flavor());
    describeFlavor();
  }

  function describeFlavor() {
    const select = $('#config-flavor');
    const name = select.value;
    const info = state.flavors.get(name);
    $('#config-flavor-help').textContent = select.disabled ? '' : info?.description || '';
    $('#config-summary').textContent = select.disabled ? '…' : info?.label || name;
  }

  function flavor() {
    return $('#config-flavor').value || 'default';
  }

  function onModeChange() {
    // The API has no mode field yet; the mode only changes the hint so the person knows what to write.
    const ad = $('#mode-ad-creative').checked;
    $('#video-description').placeholder = ad
      ? 'A 20-second spot for a reusable water bottle: morning run, city rooftops, upbeat.'
      : 'A lonely robot finds a guitar in a scrapyard and starts a band.';
  }

  // ---- Scenes --------------------------------------------------------------------------------

  async function generateScenes(event) {
    event.preventDefault();
    const idea = requireText('#video-description', '#video-description-error', 'Describe the video first.');
    const character = requireText(
      '#character-description',
      '#character-description-error',
      'Describe the character: every scene is written around them.',
    );
    if (idea === null || character === null) {
      document.querySelector('[aria-invalid="true"]')?.focus();
      return;
    }
    hideError($('#scenes-error'));

    const run = ++state.run;
    forgetSession();
    const button = $('#generate-scenes');
    const status = $('#scenes-status');
    button.disabled = true;
    status.textContent = 'Writing scenes…';
    try {
      const { data, headers } = await api('/create_scenes', {
        idea,
        character_description: character,
        config_flavor: flavor(),
      });
      if (run !== state.run) return;
      const scenes = Array.isArray(data.scenes) ? data.scenes : [];
      state.scenes = scenes;
      drawScenes(scenes);
      saveSession();
      $('#scenes-meta').replaceChildren(resultMeta(data.metadata, headers));
      $('#scenes-section').hidden = false;
      $('#character-section').hidden = false;
      updateVideoButton();
      status.textContent = `${scenes.length} ${scenes.length === 1 ? 'scene' : 'scenes'} ready.`;
    } catch (err) {
      if (run !== state.run) return;
      status.textContent = '';
      showError($('#scenes-error'), `Scenes failed: ${err.message}`);
    } finally {
      if (run === state.run) button.disabled = false;
    }
  }

  // The trimmed text of a required field, or null after marking it and saying what is missing.
  function requireText(selector, errorSelector, message) {
    const field = $(selector);
    const value = field.value.trim();
    if (value) {
      field.removeAttribute('aria-invalid');
      hideError($(errorSelector));
      return value;
    }
    field.setAttribute('aria-invalid', 'true');
    showError($(errorSelector), message);
    return null;
  }

  function drawScenes(scenes) {
    const template = $('#scene-card-template');
    const cards = scenes.map((scene, index) => {
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.index = String(index);
      card.querySelector('.scene-title').textContent = `Scene ${index + 1}`;
      card.querySelector('.scene-description').textContent = scene.description || '';
      const negative = scene.negative_description || '';
      card.querySelector('.scene-negative-text').textContent = negative;
      card.querySelector('.scene-negative').hidden = !negative;
      return card;
    });
    $('#scenes').replaceChildren(...cards);
  }

  // ---- Character reference -------------------------------------------------------------------

  async function generateCharacter() {
    const button = $('#generate-character');
    const status = $('#character-status');
    const count = Number($('#num-images').value) || 4;
    hideError($('#character-error'));
    const character = requireText(
      '#character-description',
      '#character-description-error',
      'Describe the character first.',
    );
    if (character === null) {
      $('#character-description').focus();
      return;
    }
    button.disabled = true;
    status.textContent = `Drawing ${count} ${count === 1 ? 'image' : 'images'}…`;
    try {
      const { data, headers } = await api('/generate_character_reference', {
        character_description: character,
        num_images: count,
        config_flavor: flavor(),
      });
      const images = Array.isArray(data.images) ? data.images : [];
      drawReferences(images);
      $('#character-meta').replaceChildren(resultMeta(data.metadata, headers));
      status.textContent = images.length ? 'Pick one image: every scene will use that character.' : 'No images came back.';
    } catch (err) {
      status.textContent = '';
      showError($('#character-error'), `Character images failed: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  function drawReferences(images) {
    state.referenceId = null;
    state.referenceLabel = '';
    const group = $('#character-images');
    const legend = group.querySelector('legend');
    const options = images.map((image, index) => {
      const label = document.createElement('label');
      label.className = 'ref-option';
      const radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'character-reference';
      radio.value = image.id;
      radio.addEventListener('change', () => {
        state.referenceId = image.id;
        state.referenceLabel = `option ${index + 1}`;
        saveSession();
        updateVideoButton();
      });
      const img = document.createElement('img');
      img.alt = `Character option ${index + 1}`;
      img.decoding = 'async';
      setMediaSource(img, image.url);
      const caption = document.createElement('span');
      caption.textContent = `Option ${index + 1}`;
      label.append(radio, img, caption);
      return label;
    });
    group.replaceChildren(legend, ...options);
    group.hidden = images.length === 0;
    saveSession();
    updateVideoButton();
  }

  // ---- Videos, as jobs -------------------------------------------------------------------------
  //
  // "Render all videos" submits one `video` job per card (POST /jobs answers at once; the server
  // queues and renders). Each card then follows its job: over the job's event stream while one of
  // MAX_STREAMS stream slots is free, else by reading the job every POLL_MS until a slot frees up.
  // What a card shows always comes from the job, so a reload can redraw it from the job id alone.

  const FINAL = ['succeeded', 'failed', 'canceled'];
  // card index → { card, index, job, lastEventId, base, timer, view, abort }
  const followed = new Map();
  let openStreams = 0;

  function updateVideoButton() {
    const button = $('#generate-videos');
    const help = $('#videos-help');
    const count = state.scenes.length;
    if (!state.referenceId) {
      button.disabled = true;
      help.textContent = 'Pick a character reference first.';
    } else if (count === 0) {
      button.disabled = true;
      help.textContent = 'Generate scenes first.';
    } else {
      button.disabled = state.rendering || activeJobs() > 0;
      help.textContent = `Renders ${count} ${count === 1 ? 'scene' : 'scenes'} with character ${state.referenceLabel}.`;
    }
  }

  function activeJobs() {
    return [...followed.values()].filter((entry) => !FINAL.includes(entry.job.status)).length;
  }

  async function renderAllVideos() {
    const cards = [...document.querySelectorAll('#scenes .scene-card')];
    if (!state.referenceId || cards.length === 0) return;
    const run = state.run;
    const referenceId = state.referenceId;
    state.rendering = true;
    updateVideoButton();
    for (const card of cards) setCardStatus(card, 'queued', [text('Queued')]);
    // Submitting is quick (the server only queues), so one after another keeps the scenes' order.
    for (const card of cards) {
      if (run !== state.run) break;
      await submitVideo(card, referenceId);
    }
    state.rendering = false;
    updateVideoButton();
  }

  // Never throws: a refused submission shows on its card with Retry.
  async function submitVideo(card, referenceId) {
    const run = state.run;
    const index = Number(card.dataset.index);
    const scene = state.scenes[index];
    if (!scene) return;
    stopFollowing(index);
    card.querySelector('.scene-result').replaceChildren();
    setCardStatus(card, 'queued', [text('Queued')]);
    const input = { prompt: scene.description, character_reference_id: referenceId, config_flavor: flavor() };
    if (scene.negative_description) input.negative_prompt = scene.negative_description;
    const body = { kind: 'video', input };
    const key = submissionKey(index, body);
    try {
      const { data } = await api('/jobs', body, { 'Idempotency-Key': key });
      unanswered.delete(index);
      if (run !== state.run) return;
      if (typeof data.id !== 'string' || typeof data.status !== 'string') {
        throw new Error('the server sent a job this page cannot read.');
      }
      session.jobs[index] = data.id;
      saveSession();
      follow(card, data);
    } catch (err) {
      // An answer (even a refusal) ends the submission; without one the job may exist all the
      // same, so a retry of this very submission sends the same key and gets that job back.
      if (err.status !== undefined) unanswered.delete(index);
      if (run !== state.run) return;
      showFailed(card, err.message);
    }
  }

  // Per card, the submission the server never answered (a network error): { key, body }.
  const unanswered = new Map();

  // The Idempotency-Key of a submission: the unanswered one's when this is the same submission
  // retried, else a new one (so Retry after an answered failure is a new job, as it should be).
  function submissionKey(index, body) {
    const text = JSON.stringify(body);
    const pending = unanswered.get(index);
    if (pending && pending.body === text) return pending.key;
    const key = newKey();
    unanswered.set(index, { key, body: text });
    return key;
  }

  // crypto.randomUUID exists only in secure contexts (HTTPS, localhost); a page served over plain
  // HTTP on a LAN address builds the same random v4 UUID from getRandomValues.
  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // After a reload: the card is redrawn from its job, and followed again if it is not finished.
  async function resumeVideo(card, id) {
    const run = state.run;
    setCardStatus(card, 'queued', [text('Checking…')]);
    try {
      const { data } = await api(`/jobs/${encodeURIComponent(id)}`);
      if (run !== state.run) return;
      follow(card, data);
    } catch (err) {
      if (run !== state.run) return;
      showFailed(card, `could not resume this render (${err.message.replace(/\.$/, '')}).`);
    }
  }

  function follow(card, job) {
    const index = Number(card.dataset.index);
    stopFollowing(index);
    const entry = {
      card, index, job, lastEventId: null, base: null, timer: null, view: null, abort: new AbortController(),
    };
    followed.set(index, entry);
    syncElapsed(entry);
    draw(entry);
    if (!FINAL.includes(job.status)) keepUp(entry);
  }

  function stopFollowing(index) {
    const entry = followed.get(index);
    if (!entry) return;
    entry.abort.abort();
    clearInterval(entry.timer);
    followed.delete(index);
  }

  function stopAll() {
    for (const index of [...followed.keys()]) stopFollowing(index);
  }

  function current(entry) {
    return followed.get(entry.index) === entry && !entry.abort.signal.aborted;
  }

  // Follows one job until it is final or the card is dropped. A stream ends after the job's final
  // event, or drops; either way the job is read once (it carries the output), and a drop reconnects
  // with Last-Event-ID after a backoff of 0.5 s doubling up to 10 s (back to 0.5 s once an event got
  // through), so nothing missed is lost and a down server is not hammered.
  async function keepUp(entry) {
    let failures = 0;
    while (current(entry) && !FINAL.includes(entry.job.status)) {
      if (openStreams >= MAX_STREAMS) {
        await sleep(POLL_MS);
        if (current(entry)) await refresh(entry);
        continue;
      }
      openStreams++;
      try {
        const events = await streamEvents(entry);
        failures = events > 0 ? 1 : failures + 1;
      } catch {
        failures++;
      } finally {
        openStreams--;
      }
      if (!current(entry)) return;
      await refresh(entry);
      if (!FINAL.includes(entry.job.status)) await sleep(Math.min(500 * 2 ** Math.max(0, failures - 1), 10000));
    }
  }

  async function refresh(entry) {
    try {
      const { data } = await api(`/jobs/${encodeURIComponent(entry.job.id)}`);
      if (!current(entry) || typeof data.status !== 'string') return;
      entry.job = data;
      syncElapsed(entry);
      draw(entry);
    } catch (err) {
      if (!current(entry)) return;
      // Gone from the server (a new database, say): nothing more will come for this card.
      if (err.status === 404) {
        stopFollowing(entry.index);
        showFailed(entry.card, err.message);
      }
      // Anything else (the server restarting): keep the card as it is and try again later.
    }
  }

  // Reads the job's event stream with fetch, because EventSource cannot send X-API-Key. Resolves
  // with the number of events read once the server ends the stream; rejects when it drops.
  async function streamEvents(entry) {
    const headers = { Accept: 'text/event-stream' };
    const key = load(KEY_STORE);
    if (key) headers['X-API-Key'] = key;
    if (entry.lastEventId !== null) headers['Last-Event-ID'] = entry.lastEventId;
    const response = await fetch(`${API}/jobs/${encodeURIComponent(entry.job.id)}/events`, {
      headers,
      cache: 'no-store',
      signal: entry.abort.signal,
    });
    if (response.status === 401) {
      await askForKey(key ? 'The saved API key was not accepted. Enter it again.' : 'This server needs an API key.');
      return 0;
    }
    if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let count = 0;
    let event = { id: null, name: 'message', data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return count;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (event.id !== null) entry.lastEventId = event.id;
          if (event.data.length > 0 && current(entry)) {
            count++;
            onEvent(entry, event.name, event.data.join('\n'));
          }
          event = { id: null, name: 'message', data: [] };
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') event.data.push(value);
          else if (field === 'event') event.name = value;
          else if (field === 'id') event.id = value;
        }
      }
    }
  }

  // Progress is drawn from the event itself; a final event is not: the stream ends right after
  // it and the job read then carries the output or the error.
  function onEvent(entry, name, raw) {
    if (FINAL.includes(name)) return;
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    if (!data || typeof data !== 'object') return;
    const job = entry.job;
    if (typeof data.status === 'string' && !FINAL.includes(data.status)) job.status = data.status;
    job.progress = job.progress && typeof job.progress === 'object' ? job.progress : {};
    if ('upstream_status' in data) job.progress.upstream_status = data.upstream_status;
    if ('stage' in data) job.progress.stage = data.stage;
    if (data.cancel_requested === true || name === 'cancel_requested') job.cancel_requested = true;
    draw(entry);
  }

  // The server's elapsed seconds, carried on by the page's clock between reads.
  function syncElapsed(entry) {
    const seconds = entry.job.progress && entry.job.progress.elapsed_seconds;
    entry.base = typeof seconds === 'number' ? performance.now() - seconds * 1000 : null;
  }

  function draw(entry) {
    const { card, job } = entry;
    clearInterval(entry.timer);
    entry.timer = null;
    if (job.status === 'queued') {
      if (card.dataset.state !== 'queued' || !card.querySelector('.cancel')) {
        setCardStatus(card, 'queued', [text('Queued'), cancelButton(entry)]);
      }
    } else if (job.status === 'processing') {
      drawRendering(entry);
    } else if (job.status === 'succeeded') {
      drawVideo(entry);
    } else if (job.status === 'failed') {
      const error = job.error && typeof job.error.message === 'string' ? job.error.message : 'the render failed.';
      showFailed(card, error);
    } else if (job.status === 'canceled') {
      setCardStatus(card, 'canceled', [text('Canceled'), retryButton(card, 'Render again')]);
    }
    updateVideoButton();
  }

  // Built once when the card starts rendering; later events and the clock only change texts, so
  // a click on Cancel is never lost to a redraw (progress can arrive several times a second).
  function drawRendering(entry) {
    const { card, job } = entry;
    if (entry.base === null) entry.base = performance.now();
    let view = entry.view;
    if (!view || card.dataset.state !== 'rendering' || !card.contains(view.clock)) {
      view = { clock: text(''), badge: document.createElement('span'), action: cancelButton(entry) };
      view.badge.className = 'badge upstream-status';
      view.badge.title = 'What the video service says';
      setCardStatus(card, 'rendering', [spinner(), view.clock, view.badge, view.action]);
      entry.view = view;
    }
    const upstream = job.progress && job.progress.upstream_status;
    view.badge.textContent = typeof upstream === 'string' ? upstream : '';
    view.badge.hidden = !view.badge.textContent;
    if (job.cancel_requested && view.action.tagName === 'BUTTON') {
      const canceling = text('Canceling…');
      view.action.replaceWith(canceling);
      view.action = canceling;
    }
    const tick = () => {
      view.clock.textContent = `Rendering… ${Math.max(0, Math.round((performance.now() - entry.base) / 1000))} s`;
    };
    tick();
    entry.timer = setInterval(tick, 1000);
  }

  function drawVideo(entry) {
    const { card, job } = entry;
    const output = job.output && typeof job.output === 'object' ? job.output : {};
    if (typeof output.video_url !== 'string') {
      showFailed(card, 'the job finished without a video.');
      return;
    }
    const video = document.createElement('video');
    video.controls = true;
    video.preload = 'metadata';
    video.playsInline = true;
    video.setAttribute('aria-label', `Video for scene ${entry.index + 1}`);
    setMediaSource(video, output.video_url);
    const meta = resultMeta(output.metadata, null);
    if (output.character_reference_warning) meta.append(warning(output.character_reference_warning));
    card.querySelector('.scene-result').replaceChildren(video, meta);
    const seconds = job.progress && job.progress.elapsed_seconds;
    setCardStatus(card, 'done', [text(typeof seconds === 'number' ? `Done in ${Math.round(seconds)} s` : 'Done')]);
  }

  function showFailed(card, reason) {
    const message = document.createElement('span');
    message.className = 'scene-error error';
    message.setAttribute('role', 'alert');
    message.textContent = `Failed: ${reason}`;
    setCardStatus(card, 'failed', [message, retryButton(card, 'Retry')]);
    updateVideoButton();
  }

  // A retry is a new job for the card, with the reference picked now.
  function retryButton(card, label) {
    const retry = document.createElement('button');
    retry.type = 'button';
    retry.className = 'retry';
    retry.textContent = label;
    retry.setAttribute('aria-label', `${label} scene ${Number(card.dataset.index) + 1}`);
    retry.addEventListener('click', () => {
      if (state.referenceId) submitVideo(card, state.referenceId);
    });
    return retry;
  }

  function cancelButton(entry) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'cancel';
    button.textContent = 'Cancel';
    button.setAttribute('aria-label', `Cancel scene ${entry.index + 1}`);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const { data } = await api(`/jobs/${encodeURIComponent(entry.job.id)}/cancel`, {});
        if (current(entry) && typeof data.status === 'string') {
          entry.job = data;
          draw(entry);
        }
      } catch {
        // Already finished (409) or unreachable: the job itself says what happened.
        if (current(entry)) await refresh(entry);
        button.disabled = false;
      }
    });
    return button;
  }

  function setCardStatus(card, name, children) {
    card.dataset.state = name;
    card.querySelector('.scene-status').replaceChildren(...children);
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // ---- Remembering the work across a reload ----------------------------------------------------
  //
  // The scenes, the picked reference and each card's job id: enough to redraw every card from its
  // job. Cleared by each "Generate scenes"; without localStorage the page just forgets.

  let session = { jobs: {} };

  function saveSession() {
    const value = {
      scenes: state.scenes,
      referenceId: state.referenceId,
      referenceLabel: state.referenceLabel,
      jobs: session.jobs,
    };
    save(SESSION_STORE, JSON.stringify(value));
  }

  function forgetSession() {
    stopAll();
    session = { jobs: {} };
    save(SESSION_STORE, null);
  }

  function restoreSession() {
    let saved = null;
    try {
      saved = JSON.parse(load(SESSION_STORE) || 'null');
    } catch {
      // Unreadable: start afresh.
    }
    if (!saved || typeof saved !== 'object' || !Array.isArray(saved.scenes) || saved.scenes.length === 0) return;
    state.scenes = saved.scenes.map((s) => (s && typeof s === 'object' ? s : {}));
    state.referenceId = typeof saved.referenceId === 'string' ? saved.referenceId : null;
    state.referenceLabel = typeof saved.referenceLabel === 'string' ? saved.referenceLabel : '';
    session = { jobs: saved.jobs && typeof saved.jobs === 'object' ? saved.jobs : {} };
    drawScenes(state.scenes);
    $('#scenes-section').hidden = false;
    $('#character-section').hidden = false;
    const count = state.scenes.length;
    $('#scenes-status').textContent = `${count} ${count === 1 ? 'scene' : 'scenes'} from your last visit.`;
    if (state.referenceId) {
      $('#character-status').textContent =
        `Using character ${state.referenceLabel || 'reference'} from your last visit; generate images to pick another.`;
    }
    updateVideoButton();
    for (const card of document.querySelectorAll('#scenes .scene-card')) {
      const id = session.jobs[card.dataset.index];
      if (typeof id === 'string') resumeVideo(card, id);
    }
  }

  // ---- Result labels ---------------------------------------------------------------------------

  // Which flavor served a result, whether it was the one asked for, and whether it came from the mock.
  function resultMeta(metadata, headers) {
    const box = document.createElement('div');
    box.className = 'meta';
    const choice = (metadata && metadata.config_flavor) || {};
    const used = choice.used || (headers && headers.get('X-Config-Flavor')) || '';
    if (used) {
      const badge = document.createElement('span');
      badge.className = 'badge flavor-used';
      badge.title = 'Config flavor that served this result';
      badge.textContent = used;
      box.append(text('Flavor '), badge);
    }
    if (metadata && metadata.is_mock) {
      const mock = document.createElement('span');
      mock.className = 'badge mock';
      mock.title = 'Made by the offline mock provider, not a real model';
      mock.textContent = 'mock';
      box.append(mock);
    }
    if (choice.fallback) {
      const asked = choice.requested ? `“${choice.requested}”` : 'the requested flavor';
      const note = warning(`Used “${used || 'default'}” instead of ${asked}.`);
      note.classList.add('flavor-fallback');
      if (choice.reason) {
        const reason = document.createElement('small');
        reason.className = 'reason';
        reason.textContent = choice.reason;
        note.append(reason);
      }
      box.append(note);
    }
    return box;
  }

  function warning(message) {
    const p = document.createElement('p');
    p.className = 'warning';
    p.setAttribute('role', 'status');
    p.textContent = message;
    return p;
  }

  function text(value) {
    const span = document.createElement('span');
    span.textContent = value;
    return span;
  }

  function spinner() {
    const s = document.createElement('span');
    s.className = 'spinner';
    s.setAttribute('aria-hidden', 'true');
    return s;
  }

  function showError(element, message) {
    element.textContent = message;
    element.hidden = false;
  }

  function hideError(element) {
    element.textContent = '';
    element.hidden = true;
  }

  // ---- Server access ---------------------------------------------------------------------------

  // JSON request to the API. Resolves to { data, headers }; rejects with an Error whose message is
  // what the person should read (the server's detail.message when it sent one).
  async function api(path, body, extraHeaders = {}, retried = false) {
    const headers = { Accept: 'application/json', ...extraHeaders };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const key = load(KEY_STORE);
    if (key) headers['X-API-Key'] = key;
    let response;
    try {
      response = await fetch(API + path, {
        method: body === undefined ? 'GET' : 'POST',
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new Error('could not reach the server');
    }
    if (response.status === 401 && !retried) {
      await askForKey(key ? 'The saved API key was not accepted. Enter it again.' : 'This server needs an API key.');
      return api(path, body, extraHeaders, true);
    }
    const raw = await response.text();
    let data = null;
    try {
      data = raw ? JSON.parse(raw) : null;
    } catch {
      // Not JSON (a proxy's error page, say); the status line is all we can report.
    }
    if (!response.ok) {
      // A key refused twice is dropped, so the next action asks again instead of failing forever.
      if (response.status === 401) save(KEY_STORE, null);
      const error = new Error(errorMessage(response, data));
      error.status = response.status;
      throw error;
    }
    if (data === null || typeof data !== 'object') throw new Error('the server sent an answer this page cannot read.');
    return { data, headers: response.headers };
  }

  function errorMessage(response, data) {
    const detail = data && data.detail;
    if (detail && typeof detail === 'object' && typeof detail.message === 'string' && detail.message) {
      const field = typeof detail.details === 'string' ? detail.details : '';
      return field && !detail.message.includes(field) ? `${detail.message} (${field})` : detail.message;
    }
    if (typeof detail === 'string' && detail) return detail;
    return `the server answered ${response.status} ${response.statusText}`.trim();
  }

  // One key form for the whole page: every request that hit 401 waits for the same answer.
  let keyRequest = null;
  function askForKey(reason) {
    if (keyRequest) return keyRequest;
    keyRequest = new Promise((resolve) => {
      const form = $('#api-key-form');
      const input = $('#api-key');
      $('#api-key-reason').textContent = reason;
      input.value = '';
      form.hidden = false;
      input.focus();
      form.onsubmit = (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        save(KEY_STORE, value);
        form.hidden = true;
        form.onsubmit = null;
        keyRequest = null;
        resolve();
      };
    });
    return keyRequest;
  }

  // <img> and <video> cannot send X-API-Key, so with a key the bytes are fetched here and shown
  // from a blob URL. Without one the element loads the URL itself (and a video can stream).
  async function setMediaSource(element, url) {
    const key = load(KEY_STORE);
    if (!key) {
      element.src = url;
      return;
    }
    try {
      const response = await fetch(url, { headers: { 'X-API-Key': key } });
      if (!response.ok) throw new Error(String(response.status));
      // A blob URL pins its bytes until revoked: free the one this element showed before, and an
      // image's as soon as it is decoded (a video may still read from its blob while playing).
      if (element.dataset.blobUrl) URL.revokeObjectURL(element.dataset.blobUrl);
      const blobUrl = URL.createObjectURL(await response.blob());
      element.dataset.blobUrl = blobUrl;
      if (element.tagName === 'IMG') {
        element.addEventListener('load', () => URL.revokeObjectURL(blobUrl), { once: true });
      }
      element.src = blobUrl;
    } catch {
      element.src = url;
    }
  }

  // localStorage can be disabled or full; the page then simply forgets between visits.
  function load(name) {
    try {
      return localStorage.getItem(name);
    } catch {
      return null;
    }
  }

  function save(name, value) {
    try {
      if (value === null) localStorage.removeItem(name);
      else localStorage.setItem(name, value);
    } catch {
      // Nothing to do: remembering is a convenience.
    }
  }
})();
