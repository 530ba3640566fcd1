// The music video view: a song, the idea, the character and the flavor above → one button makes
// the whole video server-side (POST /projects, then /projects/{id}/generate), followed over the
// project's event stream. Each scene gets a card (its prompt to edit and regenerate, its clip, its
// trim) and the final cut a player and a download link. The project's id is remembered, so a
// reload picks the project up where the server is.

import { api, apiPatch, downloadLink, setMediaSource } from './api.js';
import { $, hideError, requireText, showError } from './dom.js';
import { readEvents } from './events.js';
import { flavor } from './flavors.js';
import { PROJECT_STORE, load, save } from './prefs.js';
import { cutWords, drawTimeline } from './timeline.js';

// The project followed now, and the controller that stops following it.
let current = null;
let following = null;

export function setUpProject() {
  $('#make-video').addEventListener('click', makeVideo);
  $('#project-new').addEventListener('click', forget);
  const id = load(PROJECT_STORE);
  if (id) resume(id);
}

async function makeVideo() {
  const error = $('#project-error');
  hideError(error);
  const idea = requireText('#video-description', '#video-description-error', 'Describe the video first.');
  const character = requireText(
    '#character-description',
    '#character-description-error',
    'Describe the character first.',
  );
  const song = $('#project-song').files && $('#project-song').files[0];
  if (!idea || !character) return;
  if (!song) {
    showError(error, 'Choose the song first.');
    return;
  }
  const mode = document.querySelector('input[name="generation-mode"]:checked');
  const form = new FormData();
  form.append('mode', mode && mode.value === 'ad_creative' ? 'ad-creative' : 'music-video');
  form.append('prompt', idea);
  form.append('characterDescription', character);
  form.append('config_flavor', flavor());
  form.append('audio', song);
  const button = $('#make-video');
  button.disabled = true;
  $('#project-status').textContent = 'Uploading the song…';
  try {
    const { data } = await api('/projects', form);
    if (typeof data.projectId !== 'string') throw new Error('the server sent an answer this page cannot read.');
    save(PROJECT_STORE, data.projectId);
    $('#project-status').textContent = 'Starting…';
    const { data: project } = await api(`/projects/${data.projectId}/generate`, {});
    draw(project);
    follow(data.projectId, String(project.version));
  } catch (err) {
    $('#project-status').textContent = '';
    showError(error, `The video was not started: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

// After a reload: the remembered project as the server has it now, followed if still being made.
async function resume(id) {
  try {
    const { data } = await api(`/projects/${id}`);
    draw(data);
    if (['processing', 'composing'].includes(data.status)) follow(id, String(data.version));
  } catch (err) {
    // Deleted, or another server: forget it.
    if (err.status === 404 || err.status === 400) forget();
  }
}

function forget() {
  if (following) following.abort();
  following = null;
  current = null;
  save(PROJECT_STORE, null);
  $('#project-section').hidden = true;
  $('#project-scenes').replaceChildren();
  $('#project-timeline').replaceChildren();
  $('#project-timeline').hidden = true;
  $('#project-final').replaceChildren();
  $('#project-status').textContent = '';
}

// Follows the project's events until it is completed or failed, reconnecting where it left off.
async function follow(id, lastEventId) {
  if (following) following.abort();
  const controller = new AbortController();
  following = controller;
  let last = lastEventId;
  let done = false;
  while (!controller.signal.aborted && !done) {
    try {
      await readEvents(id, {
        path: `/projects/${id}/events`,
        lastEventId: last,
        signal: controller.signal,
        onId: (eventId) => {
          last = eventId;
        },
        onEvent: (name, data) => {
          if (name !== 'project') return;
          const project = JSON.parse(data);
          draw(project);
          done = project.status === 'failed' || (project.status === 'completed' && !!project.finalOutputUrl);
          if (done) controller.abort();
        },
      });
    } catch {
      if (controller.signal.aborted) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

const WORDS = {
  pending: 'Waiting',
  processing: 'Making the video…',
  composing: 'Cutting the final video…',
  completed: 'Done',
  failed: 'Stopped',
};

function draw(project) {
  current = project;
  $('#project-section').hidden = false;
  const scenes = Array.isArray(project.scenes) ? project.scenes : [];
  const clips = scenes.filter((s) => s.originalVideoClipUrl).length;
  const word = WORDS[project.status] || project.status;
  const counts = scenes.length ? ` ${clips} of ${scenes.length} scenes rendered.` : '';
  $('#project-status').textContent = `${word}.${counts}`;
  $('#project-section').dataset.status = project.status;
  const error = $('#project-failure');
  if (project.errorMessage && project.status === 'failed') showError(error, project.errorMessage);
  else hideError(error);
  $('#project-flavor').textContent = project.configFlavor ? project.configFlavor.name : '';
  drawScenes(scenes);
  drawTimeline(project);
  drawFinal(project);
}

// One card per scene, in display order, updated in place: a prompt being edited is left alone.
function drawScenes(scenes) {
  const list = $('#project-scenes');
  const cards = new Map([...list.children].map((c) => [c.dataset.sequence, c]));
  const ordered = [];
  for (const scene of scenes) {
    const key = String(scene.sequence);
    const card = cards.get(key) || newCard(scene);
    updateCard(card, scene);
    ordered.push(card);
    cards.delete(key);
  }
  list.replaceChildren(...ordered);
}

function newCard(scene) {
  const card = $('#project-scene-template').content.firstElementChild.cloneNode(true);
  card.dataset.sequence = String(scene.sequence);
  const id = `project-prompt-${scene.sequence}`;
  card.querySelector('.project-prompt-label').htmlFor = id;
  card.querySelector('.project-prompt').id = id;
  card.querySelector('.project-regenerate').addEventListener('click', () => regenerate(card));
  card.querySelector('.project-trim').addEventListener('click', () => trim(card));
  return card;
}

function updateCard(card, scene) {
  card.dataset.state = scene.status;
  card.querySelector('.scene-title').textContent = `Scene ${scene.displaySequence}`;
  card.querySelector('.scene-status').textContent = scene.errorMessage || WORDS[scene.status] || scene.status;
  card.querySelector('.project-cut').textContent = cutWords(scene);
  const prompt = card.querySelector('.project-prompt');
  if (document.activeElement !== prompt && prompt.dataset.edited !== 'true') prompt.value = scene.prompt || '';
  prompt.oninput = () => {
    prompt.dataset.edited = 'true';
  };
  const slot = card.querySelector('.project-clip');
  const url = scene.originalVideoClipUrl;
  if (url && slot.dataset.url !== url) {
    slot.dataset.url = url;
    const video = document.createElement('video');
    video.controls = true;
    video.preload = 'metadata';
    video.className = 'project-video';
    setMediaSource(video, url);
    slot.replaceChildren(video);
  }
  const trim = scene.trimPoints;
  for (const [name, value] of [['in', trim ? trim.in : 0], ['out', trim ? trim.out : scene.duration]]) {
    const input = card.querySelector(`.project-trim-${name}`);
    if (document.activeElement !== input) input.value = String(value ?? '');
  }
  const busy = scene.status === 'processing';
  card.querySelector('.project-regenerate').disabled = busy;
  card.querySelector('.project-trim').disabled = busy || !url;
}

// Saves an edited prompt, then renders the scene again (a new clip, a new URL).
async function regenerate(card) {
  if (!current) return;
  const sequence = card.dataset.sequence;
  const prompt = card.querySelector('.project-prompt');
  const button = card.querySelector('.project-regenerate');
  button.disabled = true;
  card.dataset.state = 'processing';
  card.querySelector('.scene-status').textContent = 'Rendering again…';
  try {
    if (prompt.dataset.edited === 'true') {
      await apiPatch(`/projects/${current.projectId}/scenes/${sequence}`, { prompt: prompt.value });
      prompt.dataset.edited = 'false';
    }
    await api(`/generate_scene_video/${current.projectId}/${sequence}`, {});
    await cutAgain();
  } catch (err) {
    card.dataset.state = 'failed';
    card.querySelector('.scene-status').textContent = `Not rendered: ${err.message}`;
    button.disabled = false;
  }
}

async function trim(card) {
  if (!current) return;
  const value = (name) => Number(card.querySelector(`.project-trim-${name}`).value);
  try {
    await api(`/projects/${current.projectId}/scenes/${card.dataset.sequence}/trim`, {
      trimPoints: { in: value('in'), out: value('out') },
    });
    await cutAgain();
  } catch (err) {
    card.querySelector('.scene-status').textContent = `Not trimmed: ${err.message}`;
  }
}

// A scene changed: the server cuts the video again from the clips as they are, followed here.
async function cutAgain() {
  const { data } = await api(`/projects/${current.projectId}/generate`, {});
  draw(data);
  follow(current.projectId, String(data.version));
}

// The final cut's player and download link, once there is one.
function drawFinal(project) {
  const slot = $('#project-final');
  const url = project.finalOutputUrl;
  if (!url) {
    slot.replaceChildren();
    return;
  }
  if (slot.dataset.url === url && slot.children.length) return;
  slot.dataset.url = url;
  const video = document.createElement('video');
  video.id = 'project-final-video';
  video.controls = true;
  video.preload = 'metadata';
  setMediaSource(video, url);
  const link = downloadLink(url, `music-video-${project.projectId}.mp4`, 'project-final-download', 'Download the music video');
  slot.replaceChildren(video, link);
}
