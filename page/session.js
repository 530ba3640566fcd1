// Remembering the work across a reload: the scenes, the picked reference and each card's job id,
// enough to redraw every card from its job. Cleared by each "Generate scenes"; without
// localStorage the page just forgets.

import { SESSION_STORE, load, save } from './prefs.js';
import { state } from './state.js';

// card index → job id
export const session = { jobs: {} };

export function saveSession() {
  const value = {
    scenes: state.scenes,
    referenceId: state.referenceId,
    referenceLabel: state.referenceLabel,
    jobs: session.jobs,
  };
  save(SESSION_STORE, JSON.stringify(value));
}

export function clearSession() {
  session.jobs = {};
  save(SESSION_STORE, null);
}

// The last visit's work put back into `state` and `session`; false when there is none.
export function loadSession() {
  let saved = null;
  try {
    saved = JSON.parse(load(SESSION_STORE) || 'null');
  } catch {
    // Unreadable: start afresh.
  }
  if (!saved || typeof saved !== 'object' || !Array.isArray(saved.scenes) || saved.scenes.length === 0) return false;
  state.scenes = saved.scenes.map((s) => (s && typeof s === 'object' ? s : {}));
  state.referenceId = typeof saved.referenceId === 'string' ? saved.referenceId : null;
  state.referenceLabel = typeof saved.referenceLabel === 'string' ? saved.referenceLabel : '';
  session.jobs = saved.jobs && typeof saved.jobs === 'object' ? saved.jobs : {};
  return true;
}
