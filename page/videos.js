// The videos view: "Render all videos" submits one `video` job per card (POST /jobs answers at once;
// the server queues and renders). Each card then follows its job: over the job's event stream
// while one of MAX_STREAMS stream slots is free, else by reading the job every POLL_MS until a slot
// frees up. What a card shows always comes from the job, so a reload can redraw it from the job id
// alone.

import { api, newKey, setMediaSource } from './api.js';
import { $, resultMeta, sleep, spinner, text, warning } from './dom.js';
import { readEvents } from './events.js';
import { flavor } from './flavors.js';
import { session, saveSession } from './session.js';
import { state } from './state.js';

// Browsers open at most 6 HTTP/1.1 connections per origin and a job's event stream holds one for
// the whole render, so at most this many cards stream; the others read their job every POLL_MS
// and take a stream when one frees up. The rest stay free for images, videos and the buttons.
const MAX_STREAMS = 3;
const POLL_MS = 2000;

export function setUpVideos() {
  $('#generate-videos').addEventListener('click', renderAllVideos);
}

const FINAL = ['succeeded', 'failed', 'canceled'];
// card index → { card, index, job, lastEventId, base, timer, view, abort }
const followed = new Map();
let openStreams = 0;

export function updateVideoButton() {
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

// After a reload: the card is redrawn from its job, and followed again if it is not finished.
export async function resumeVideo(card, id) {
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

export function stopAll() {
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

// One stream of the job's events, from where the last one left off.
function streamEvents(entry) {
  return readEvents(entry.job.id, {
    lastEventId: entry.lastEventId,
    signal: entry.abort.signal,
    onId: (id) => {
      entry.lastEventId = id;
    },
    onEvent: (name, data) => {
      if (current(entry)) onEvent(entry, name, data);
    },
  });
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
  if (typeof output.video_id === 'string') card.dataset.videoId = output.video_id;
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
  // The final cut view waits for every card to be done.
  document.dispatchEvent(new CustomEvent('mvgen:videos'));
}
