// Small DOM helpers every view uses. Every piece of server text goes in through textContent, never
// innerHTML.

export const $ = (selector) => document.querySelector(selector);

export function text(value) {
  const span = document.createElement('span');
  span.textContent = value;
  return span;
}

export function spinner() {
  const s = document.createElement('span');
  s.className = 'spinner';
  s.setAttribute('aria-hidden', 'true');
  return s;
}

export function warning(message) {
  const p = document.createElement('p');
  p.className = 'warning';
  p.setAttribute('role', 'status');
  p.textContent = message;
  return p;
}

export function showError(element, message) {
  element.textContent = message;
  element.hidden = false;
}

export function hideError(element) {
  element.textContent = '';
  element.hidden = true;
}

// The trimmed text of a required field, or null after marking it and saying what is missing.
export function requireText(selector, errorSelector, message) {
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

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Which flavor served a result, whether it was the one asked for, and whether it came from the mock.
export function resultMeta(metadata, headers) {
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
