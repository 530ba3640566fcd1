// The scenes view: the idea and the character written into scenes (create_scenes), one card each.

import { api } from './api.js';
import { $, hideError, requireText, resultMeta, showError } from './dom.js';
import { flavor } from './flavors.js';
import { clearSession, saveSession } from './session.js';
import { state } from './state.js';
import { stopAll, updateVideoButton } from './videos.js';

export function setUpScenes() {
  $('#create-form').addEventListener('submit', generateScenes);
  for (const id of ['video-description', 'character-description']) {
    $(`#${id}`).addEventListener('input', () => hideError($(`#${id}-error`)));
  }
}

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
  stopAll();
  clearSession();
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

export function drawScenes(scenes) {
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
  document.dispatchEvent(new CustomEvent('mvgen:videos'));
}
