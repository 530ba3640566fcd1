// The character view: reference images drawn from the character description; the one picked
// guides every scene's video.

import { api, setMediaSource } from './api.js';
import { $, hideError, requireText, resultMeta, showError } from './dom.js';
import { flavor } from './flavors.js';
import { saveSession } from './session.js';
import { state } from './state.js';
import { updateVideoButton } from './videos.js';

export function setUpCharacter() {
  $('#generate-character').addEventListener('click', generateCharacter);
}

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
