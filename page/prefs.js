// What the page remembers between visits, in localStorage. It can be disabled or full; the page
// then simply forgets.

export const KEY_STORE = 'mvgen.apiKey';
export const FLAVOR_STORE = 'mvgen.configFlavor';
export const SESSION_STORE = 'mvgen.session';
export const PROJECT_STORE = 'mvgen.project';

export function load(name) {
  try {
    return localStorage.getItem(name);
  } catch {
    return null;
  }
}

export function save(name, value) {
  try {
    if (value === null) localStorage.removeItem(name);
    else localStorage.setItem(name, value);
  } catch {
    // Nothing to do: remembering is a convenience.
  }
}
