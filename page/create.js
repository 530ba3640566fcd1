// mvgen create page: idea → scenes → character reference → one video per scene → the final cut;
// or the whole music video made server-side in one step (a project).
// Talks only to /api/mv/* on the same origin. Plain DOM, no framework, no build step: ES modules,
// one per concern (api: the API client; events: following a job; prefs, session, state: what is
// remembered and shared; one module per view).

import { setUpCharacter } from './character.js';
import { $ } from './dom.js';
import { setUpFinalCut } from './final-cut.js';
import { setUpConfig } from './flavors.js';
import { setUpProject } from './project.js';
import { drawScenes, setUpScenes } from './scenes.js';
import { loadSession, session } from './session.js';
import { state } from './state.js';
import { resumeVideo, setUpVideos, updateVideoButton } from './videos.js';

// Modules run once the document is parsed (they are deferred), so the page is there to wire.
setUpConfig();
setUpScenes();
setUpCharacter();
setUpVideos();
setUpFinalCut();
setUpProject();
restoreSession();

// After a reload: the last visit's scenes, reference and cards, each card redrawn from its job.
function restoreSession() {
  if (!loadSession()) return;
  drawScenes(state.scenes);
  $('#scenes-section').hidden = false;
  $('#character-section').hidden = false;
  const count = state.scenes.length;
  $('#scenes-status').textContent = `${count} ${count === 1 ? 'scene' : 'scenes'} from your last visit.`;
  if (state.referenceId) {
    $('#character-status').textContent =
      `Using character ${state.referenceLabel || 'reference'} from your last visit; generate images to pick another.`;
  }
  updateVideoButton();
  for (const card of document.querySelectorAll('#scenes .scene-card')) {
    const id = session.jobs[card.dataset.index];
    if (typeof id === 'string') resumeVideo(card, id);
  }
}
