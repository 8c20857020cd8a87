// The model's state in the toolbar (ready, loading, or no worker running), read from the
// API every STATUS_POLL_MS while the page is visible, and whenever it becomes visible.

import { api } from "./api.js";
import { updateModels } from "./models.js";
import { el } from "./page.js";

// The worker state is polled this often (milliseconds), and on every reconnect.
var STATUS_POLL_MS = 10000;

function setWorkerState(stateName, text) {
  el.workerStatus.dataset.state = stateName;
  if (el.workerStatusText.textContent !== text) {
    el.workerStatusText.textContent = text;
  }
  el.workerNotice.hidden = stateName !== "no_worker";
}

export function refreshStatus() {
  return api("status").then(function (data) {
    updateModels(data);
    var name = data.model ? String(data.model) : "Model";
    if (data.state === "ready") {
      var workers = Number(data.workers) || 0;
      setWorkerState("ready", name + " \u00b7 ready" + (workers > 1 ? " (" + workers + " workers)" : ""));
    } else if (data.state === "loading") {
      setWorkerState("loading", name + " \u00b7 loading\u2026");
    } else {
      setWorkerState("no_worker", "No model running");
    }
  }).catch(function () {
    setWorkerState("unknown", "Model state unknown");
  });
}

export function initStatus() {
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refreshStatus();
    }
  });
  window.setInterval(function () {
    if (!document.hidden) {
      refreshStatus();
    }
  }, STATUS_POLL_MS);
}
