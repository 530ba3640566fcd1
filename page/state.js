// What the page is working on, shared by its views.

export const state = {
  flavors: new Map(),
  scenes: [],
  referenceId: null,
  referenceLabel: '',
  // Bumped by each "Generate scenes"; answers for an older run are dropped instead of drawn.
  run: 0,
  // True while "Render all videos" is submitting its jobs.
  rendering: false,
};
