// The API client: every request the page makes to /api/mv/* on the same origin, with the API key
// when the server wants one (asked for once, in one form, whoever hit the 401 first).

import { $ } from './dom.js';
import { KEY_STORE, load, save } from './prefs.js';

export const API = '/api/mv';

// A request to the API: JSON when `body` is an object, as it is when it is FormData (a file
// upload). Resolves to { data, headers }; rejects with an Error whose message is what the person
// should read (the server's detail.message when it sent one) and whose `status` is the answer's.
export function api(path, body, extraHeaders = {}) {
  return request(body === undefined ? 'GET' : 'POST', path, body, extraHeaders);
}

// The same for a PATCH (a project's or a scene's fields).
export function apiPatch(path, body) {
  return request('PATCH', path, body, {});
}

async function request(method, path, body, extraHeaders, retried = false) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers['Content-Type'] = 'application/json';
  const key = load(KEY_STORE);
  if (key) headers['X-API-Key'] = key;
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
    });
  } catch {
    throw new Error('could not reach the server');
  }
  if (response.status === 401 && !retried) {
    await askForKey(key ? 'The saved API key was not accepted. Enter it again.' : 'This server needs an API key.');
    return request(method, path, body, extraHeaders, true);
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
export function askForKey(reason) {
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

// <img>, <video> and a download link cannot send X-API-Key, so with a key the bytes are fetched
// here and shown from a blob URL. Without one the element loads the URL itself (and a video can
// stream). `attribute` is `src`, or `href` for a link.
export async function setMediaSource(element, url, attribute = 'src') {
  const key = load(KEY_STORE);
  if (!key) {
    element[attribute] = url;
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
    element[attribute] = blobUrl;
  } catch {
    element[attribute] = url;
  }
}

// A download link for the stored file at `url`. With an API key the link can't send it, so the
// file is fetched with the key into a blob URL: only when the link is used, not beside a player's
// own copy of a video that may be 100+ MB.
export function downloadLink(url, filename, id, label) {
  const link = document.createElement('a');
  link.id = id;
  link.textContent = label;
  link.download = filename;
  link.href = url;
  link.addEventListener('click', async (event) => {
    // Once: the click below (or any later one) follows whatever href it ended with.
    if (!load(KEY_STORE) || link.dataset.fetched) return;
    event.preventDefault();
    link.dataset.fetched = 'true';
    await setMediaSource(link, url, 'href');
    link.click();
  });
  return link;
}

// crypto.randomUUID exists only in secure contexts (HTTPS, localhost); a page served over plain
// HTTP on a LAN address builds the same random v4 UUID from getRandomValues.
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
