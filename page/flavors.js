// The configuration view: the flavor select (from get_config_flavors, remembered between visits),
// its description, the live-configs diagnostics, and the generation mode's hint.

import { api } from './api.js';
import { $, showError } from './dom.js';
import { FLAVOR_STORE, load, save } from './prefs.js';
import { state } from './state.js';

export function setUpConfig() {
  $('#config-toggle').addEventListener('click', toggleConfig);
  $('#config-flavor').addEventListener('change', onFlavorChange);
  for (const radio of document.querySelectorAll('input[name="generation-mode"]')) {
    radio.addEventListener('change', onModeChange);
  }
  loadFlavors();
}

// The flavor every generation asks for.
export function flavor() {
  return $('#config-flavor').value || 'default';
}

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

function onModeChange() {
  // The API has no mode field yet; the mode only changes the hint so the person knows what to write.
  const ad = $('#mode-ad-creative').checked;
  $('#video-description').placeholder = ad
    ? 'A 20-second spot for a reusable water bottle: morning run, city rooftops, upbeat.'
    : 'A lonely robot finds a guitar in a scrapyard and starts a band.';
}
