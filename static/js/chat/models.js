// The model picker in the toolbar: which model the open conversation uses, and which others
// this person may pick (from the status API, refreshed with the model's state). A
// conversation remembers its model on the server; a new one starts with the site's default.
// The choice travels with each chat.send as `model`, and the conversation keeps it.

import { make } from "./util.js";

// Sent on the document when the model shown in the picker changes.
export var MODEL_CHANGED = "chat:model-changed";

var STATE_NOTES = {
  ready: "",
  loading: " (starting)",
  failed: " (not running)",
  no_worker: " (not running)",
};

var models = [];
var defaultModel = "";
// The model of the conversation shown (null for a new one), and what the person picked for
// it since it was opened (null: nothing yet).
var conversationModel = null;
var picked = null;

function picker() {
  return document.getElementById("model-picker");
}

function shownModel() {
  return picked || conversationModel || defaultModel;
}

function option(value, label) {
  var node = make("option", "", label);
  node.value = value;
  return node;
}

function render() {
  var select = picker();
  if (!select) {
    return;
  }
  var names = models.map(function (model) { return model.name; });
  var shown = shownModel();
  var options = models.map(function (model) {
    return option(model.name, model.name + (STATE_NOTES[model.state] || ""));
  });
  if (shown && names.indexOf(shown) === -1) {
    // The conversation's model is gone (or not for this person any more): shown as it is,
    // so that the person sees why and picks another.
    options.unshift(option(shown, shown + " (not available)"));
  }
  select.replaceChildren.apply(select, options);
  select.value = shown;
  select.closest(".model-picker").hidden = options.length < 2;
  document.dispatchEvent(new CustomEvent(MODEL_CHANGED));
}

// From the status API: {models: [{name, state}], default}.
export function updateModels(data) {
  models = Array.isArray(data.models) ? data.models : [];
  defaultModel = data.default ? String(data.default) : "";
  render();
}

// The conversation shown changed: its remembered model (null or "" for a new one).
export function setConversationModel(name) {
  conversationModel = name ? String(name) : null;
  picked = null;
  render();
}

// The model to send with chat.send, or null to leave it to the server.
export function chosenModel() {
  return shownModel() || null;
}

export function initModels() {
  var select = picker();
  if (select) {
    select.addEventListener("change", function () {
      picked = select.value;
      document.dispatchEvent(new CustomEvent(MODEL_CHANGED));
    });
  }
}
