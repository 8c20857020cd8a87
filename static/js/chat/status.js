// The model's state in the toolbar (ready, loading, or no worker running), read from the
// API every STATUS_POLL_MS while the page is visible, and whenever it becomes visible.

import { api } from "./api.js";
import { chosenModel, MODEL_CHANGED, updateModels } from "./models.js";
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

// The status API's last answer, shown again when the model picked changes.
var lastStatus = null;

// The state of the model the open conversation uses (the picker's), where the API lists it;
// else the overall state.
function showStatus(data) {
  var name = data.model ? String(data.model) : "Model";
  var stateName = data.state;
  var workers = Number(data.workers) || 0;
  var model = chosenModel();
  var listed = (Array.isArray(data.models) ? data.models : []).find(function (entry) {
    return entry.name === model;
  });
  if (listed) {
    name = String(listed.name);
    stateName = listed.state;
    workers = 0;
  }
  if (stateName === "ready") {
    setWorkerState("ready", name + " \u00b7 ready" + (workers > 1 ? " (" + workers + " workers)" : ""));
  } else if (stateName === "loading") {
    setWorkerState("loading", name + " \u00b7 loading\u2026");
  } else if (listed && data.state === "ready") {
    setWorkerState("no_worker", name + " is not running; pick another model");
  } else {
    setWorkerState("no_worker", "No model running");
  }
}

export function refreshStatus() {
  return api("status").then(function (data) {
    updateModels(data);
    lastStatus = data;
    showStatus(data);
  }).catch(function () {
    setWorkerState("unknown", "Model state unknown");
  });
}

export function initStatus() {
  document.addEventListener(MODEL_CHANGED, function () {
    if (lastStatus) {
      showStatus(lastStatus);
    }
  });
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
