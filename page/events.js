// Following a job's Server-Sent Events with fetch, because EventSource cannot send X-API-Key.

import { API, askForKey } from './api.js';
import { KEY_STORE, load } from './prefs.js';

// Reads job `id`'s event stream (or the stream at `path` under the API, a project's) from
// `lastEventId` (or the start), calling onEvent(name, data) for each event and onId(id) as ids
// pass. Resolves with the number of events read once the server ends the stream (0 after asking
// for a key); rejects when it drops.
export async function readEvents(id, { lastEventId, signal, onEvent, onId, path }) {
  const headers = { Accept: 'text/event-stream' };
  const key = load(KEY_STORE);
  if (key) headers['X-API-Key'] = key;
  if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
  const response = await fetch(API + (path || `/jobs/${encodeURIComponent(id)}/events`), {
    headers,
    cache: 'no-store',
    signal,
  });
  if (response.status === 401) {
    await askForKey(key ? 'The saved API key was not accepted. Enter it again.' : 'This server needs an API key.');
    return 0;
  }
  if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let count = 0;
  let event = { id: null, name: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return count;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === '') {
        if (event.id !== null) onId(event.id);
        if (event.data.length > 0 && !signal.aborted) {
          count++;
          onEvent(event.name, event.data.join('\n'));
        }
        event = { id: null, name: 'message', data: [] };
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') event.data.push(value);
        else if (field === 'event') event.name = value;
        else if (field === 'id') event.id = value;
      }
    }
  }
}
