// mvgen create page: idea → scenes → character reference → one video per scene.
// Talks only to /api/mv/* on the same origin. Plain DOM, no framework, no build step. Every piece of
// server text goes in through textContent, never innerHTML.
'use strict';

(() => {
  const API = '/api/mv';
  const KEY_STORE = 'mvgen.apiKey';
  const FLAVOR_STORE = 'mvgen.configFlavor';
  // Browsers open at most 6 HTTP/1.1 connections per origin. Video renders can hold theirs for
  // minutes, so keep some free for images, finished videos and the other buttons.
  const MAX_PARALLEL_RENDERS = 4;

  const $ = (selector) => document.querySelector(selector);

  const state = {
    flavors: new Map(),
    scenes: [],
    referenceId: null,
    referenceLabel: '',
    // Bumped by each "Generate scenes"; answers for an older run are dropped instead of drawn.
    run: 0,
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
    updateVideoButton();
  }

  // ---- Videos --------------------------------------------------------------------------------

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
      button.disabled = state.rendering;
      help.textContent = `Renders ${count} ${count === 1 ? 'scene' : 'scenes'} with character ${state.referenceLabel}.`;
    }
  }

  async function renderAllVideos() {
    const run = state.run;
    const cards = [...document.querySelectorAll('#scenes .scene-card')];
    if (!state.referenceId || cards.length === 0) return;
    const referenceId = state.referenceId;
    state.rendering = true;
    updateVideoButton();
    for (const card of cards) setCardStatus(card, 'queued', [text('Queued')]);
    const queue = [...cards];
    const worker = async () => {
      for (let card = queue.shift(); card; card = queue.shift()) {
        if (run !== state.run) return;
        await renderVideo(card, referenceId);
      }
    };
    await Promise.all(Array.from({ length: Math.min(MAX_PARALLEL_RENDERS, cards.length) }, worker));
    state.rendering = false;
    updateVideoButton();
  }

  // Never throws: each card shows its own outcome.
  async function renderVideo(card, referenceId) {
    const scene = state.scenes[Number(card.dataset.index)];
    if (!scene) return;
    card.querySelector('.scene-result').replaceChildren();
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) / 1000);
    const tick = () => setCardStatus(card, 'rendering', [spinner(), text(`Rendering… ${elapsed()} s`)]);
    tick();
    const timer = setInterval(tick, 1000);
    const body = { prompt: scene.description, character_reference_id: referenceId, config_flavor: flavor() };
    if (scene.negative_description) body.negative_prompt = scene.negative_description;
    try {
      const { data, headers } = await api('/generate_video', body);
      clearInterval(timer);
      const video = document.createElement('video');
      video.controls = true;
      video.preload = 'metadata';
      video.playsInline = true;
      video.setAttribute('aria-label', `Video for scene ${Number(card.dataset.index) + 1}`);
      setMediaSource(video, data.video_url);
      const meta = resultMeta(data.metadata, headers);
      if (data.character_reference_warning) meta.append(warning(data.character_reference_warning));
      card.querySelector('.scene-result').replaceChildren(video, meta);
      setCardStatus(card, 'done', [text(`Done in ${elapsed()} s`)]);
    } catch (err) {
      clearInterval(timer);
      const message = document.createElement('span');
      message.className = 'scene-error error';
      message.setAttribute('role', 'alert');
      message.textContent = `Failed: ${err.message}`;
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'retry';
      retry.textContent = 'Retry';
      retry.setAttribute('aria-label', `Retry scene ${Number(card.dataset.index) + 1}`);
      retry.addEventListener('click', () => renderVideo(card, state.referenceId || referenceId));
      setCardStatus(card, 'failed', [message, retry]);
    }
  }

  function setCardStatus(card, name, children) {
    card.dataset.state = name;
    card.querySelector('.scene-status').replaceChildren(...children);
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
  async function api(path, body, retried = false) {
    const headers = { Accept: 'application/json' };
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
      return api(path, body, true);
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
      throw new Error(errorMessage(response, data));
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
