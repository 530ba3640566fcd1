// The song's beats on a timeline under the scene cards: every beat a tick (a bar's first beat
// taller), each scene a band from its start to its cut, and each cut a marker on the beat it
// lands on. Beats come from the song's analysis (GET /get_audio/{id}/info), read once per song;
// the scenes and cuts from the project's beat plan.

import { api } from './api.js';
import { $ } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const songs = new Map();

// The analysis of song `id`, read once.
function analysis(id) {
  if (!songs.has(id)) {
    songs.set(id, api(`/get_audio/${id}/info`).then(({ data }) => data).catch(() => null));
  }
  return songs.get(id);
}

export async function drawTimeline(project) {
  const slot = $('#project-timeline');
  const plan = project.beatPlan;
  if (!project.audioId || !plan || !Array.isArray(plan.cuts) || !plan.cuts.length) {
    slot.replaceChildren();
    slot.hidden = true;
    return;
  }
  const song = await analysis(project.audioId);
  const seconds = Math.max(plan.songSeconds || 0, ...plan.cuts.map((c) => c.at));
  if (!(seconds > 0)) return;
  const width = 1000;
  const x = (t) => (t / seconds) * width;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} 60`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'timeline');
  svg.setAttribute('role', 'img');
  const beats = song && Array.isArray(song.beats) ? song.beats : [];
  const downbeats = new Set(song && Array.isArray(song.downbeats) ? song.downbeats : []);
  const tempo = song && song.tempo_bpm ? `${Math.round(song.tempo_bpm)} BPM, ` : '';
  svg.setAttribute(
    'aria-label',
    `The song: ${tempo}${beats.length} beats; ${plan.cuts.length} scenes cut on them.`,
  );
  const add = (name, attrs) => {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    svg.appendChild(node);
    return node;
  };
  let start = 0;
  plan.cuts.forEach((cut, i) => {
    add('rect', { x: x(start), y: 22, width: Math.max(0, x(cut.at) - x(start)), height: 26, class: `band band-${i % 2}` });
    start = cut.at;
  });
  for (const beat of beats) {
    const down = downbeats.has(beat);
    add('line', { x1: x(beat), x2: x(beat), y1: down ? 4 : 12, y2: 20, class: down ? 'downbeat' : 'beat' });
  }
  for (const cut of plan.cuts) {
    const marker = add('line', { x1: x(cut.at), x2: x(cut.at), y1: 2, y2: 58, class: `cut cut-${cut.on}` });
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `Cut at ${cut.at.toFixed(2)} s (${cut.on.replace('_', ' ')})`;
    marker.appendChild(title);
  }
  slot.dataset.cuts = String(plan.cuts.length);
  slot.dataset.beats = String(beats.length);
  slot.replaceChildren(svg);
  slot.hidden = false;
}

// The words a scene card shows of its cut.
export function cutWords(scene) {
  if (!scene.cut) return '';
  const on = { downbeat: 'a bar', beat: 'a beat', song_end: "the song's end", grid: 'no beat' }[scene.cut.on] || scene.cut.on;
  return `${scene.duration.toFixed(2)} s, cut at ${scene.cut.at.toFixed(2)} s on ${on}`;
}
