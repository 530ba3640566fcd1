// The final cut view: once every scene's video is done, a song can be uploaded (upload_audio) and
// the scenes cut into one video with it (stitch-videos: the clips in order, the song from 0:00,
// looped if it is shorter), then played and downloaded.

import { api, downloadLink, setMediaSource } from './api.js';
import { $, hideError, showError, warning } from './dom.js';
import { flavor } from './flavors.js';

// The uploaded song's answer ({ audio_id, codec, duration_seconds, … }), or null.
let song = null;
let busy = false;

export function setUpFinalCut() {
  $('#song-file').addEventListener('change', uploadSong);
  $('#final-cut').addEventListener('click', finalCut);
  document.addEventListener('mvgen:videos', update);
}

// Every card's video id in order, or null while any card has none.
function clipIds() {
  const cards = [...document.querySelectorAll('#scenes .scene-card')];
  if (cards.length === 0 || !cards.every((c) => c.dataset.state === 'done' && c.dataset.videoId)) return null;
  return cards.map((c) => c.dataset.videoId);
}

function update() {
  const ids = clipIds();
  $('#final-cut-section').hidden = ids === null;
  $('#final-cut').disabled = ids === null || busy;
}

async function uploadSong() {
  const input = $('#song-file');
  const file = input.files && input.files[0];
  hideError($('#song-error'));
  song = null;
  $('#song-info').textContent = '';
  if (!file) return;
  const form = new FormData();
  form.append('file', file);
  busy = true;
  update();
  $('#song-info').textContent = 'Uploading the song…';
  try {
    const { data } = await api('/upload_audio', form);
    if (typeof data.audio_id !== 'string') throw new Error('the server sent an answer this page cannot read.');
    song = data;
    const codec = typeof data.codec === 'string' ? data.codec.toUpperCase() : 'audio';
    const seconds = typeof data.duration_seconds === 'number' ? `, ${Math.round(data.duration_seconds)} s` : '';
    $('#song-info').textContent = `${codec}${seconds}: it plays from the start of the video.`;
  } catch (err) {
    $('#song-info').textContent = '';
    showError($('#song-error'), `The song was not taken: ${err.message}`);
  } finally {
    busy = false;
    update();
  }
}

async function finalCut() {
  const ids = clipIds();
  if (!ids) return;
  const body = { video_ids: ids, config_flavor: flavor() };
  if (song) {
    body.audio_overlay_id = song.audio_id;
    body.loop_audio = true;
  }
  hideError($('#final-cut-error'));
  busy = true;
  update();
  const status = $('#final-cut-status');
  status.textContent = 'Cutting…';
  try {
    const { data } = await api('/stitch-videos', body);
    if (typeof data.video_url !== 'string') throw new Error('the server sent an answer this page cannot read.');
    drawCut(data);
    const seconds = data.metadata && data.metadata.video_duration_seconds;
    status.textContent = typeof seconds === 'number' ? `Final cut ready: ${Math.round(seconds)} s.` : 'Final cut ready.';
  } catch (err) {
    status.textContent = '';
    showError($('#final-cut-error'), `The final cut failed: ${err.message}`);
  } finally {
    busy = false;
    update();
  }
}

function drawCut(data) {
  const video = document.createElement('video');
  video.controls = true;
  video.preload = 'metadata';
  video.playsInline = true;
  video.id = 'final-cut-video';
  video.setAttribute('aria-label', 'The final cut');
  setMediaSource(video, data.video_url);
  const link = downloadLink(data.video_url, `music-video-${data.video_id}.mp4`, 'final-cut-download', 'Download the video');
  const parts = [video, link];
  if (data.audio_overlay_warning) parts.push(warning(data.audio_overlay_warning));
  $('#final-cut-result').replaceChildren(...parts);
}
