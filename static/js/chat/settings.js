// A conversation's settings (instructions, temperature, answer length) in a dialog, and the
// user's named presets. A conversation not started yet keeps them here until its first
// message carries them; an existing one saves them through the API. Errors are shown next
// to their field, from the page's own checks and from the server's.

import { api, conversationPath } from "./api.js";
import { announce, app, el, state } from "./page.js";
import { make, numberFormat } from "./util.js";

var FIELDS = ["instructions", "temperature", "max_new_tokens"];
var EMPTY = { instructions: "", temperature: null, max_new_tokens: null };

var bounds = {
  instructions: parseInt(app ? app.dataset.maxInstructions : "", 10) || 4000,
  temperature: parseFloat(app ? app.dataset.maxTemperature : "") || 2,
  maxNewTokens: parseInt(app ? app.dataset.maxAnswerTokens : "", 10) || 512,
};

var ui = {};
var presets = [];
var openedFrom = null;
// Whether the person changed the form since the dialog opened.
var touched = false;

function $(id) {
  return document.getElementById(id);
}

// The settings of the conversation shown (or of the one about to start).
export function currentSettings() {
  return state.settings || EMPTY;
}

// What a new conversation's first chat.send carries: {instructions, params}.
export function draftForFirstMessage() {
  var values = currentSettings();
  var params = {};
  if (values.temperature !== null) {
    params.temperature = values.temperature;
  }
  if (values.max_new_tokens !== null) {
    params.max_new_tokens = values.max_new_tokens;
  }
  return { instructions: values.instructions || "", params: params };
}

// Called when another conversation is shown: its stored settings, or none for a new one.
export function showSettingsOf(values) {
  state.settings = values ? {
    instructions: String(values.instructions || ""),
    temperature: typeof values.temperature === "number" ? values.temperature : null,
    max_new_tokens: typeof values.max_new_tokens === "number" ? values.max_new_tokens : null,
  } : null;
  markButton();
  // Opened before the conversation finished loading: show its settings once they arrive.
  if (ui.dialog && ui.dialog.open && !touched) {
    fillForm(currentSettings());
  }
}

function markButton() {
  if (!ui.open) {
    return;
  }
  var values = currentSettings();
  var custom = Boolean(values.instructions) || values.temperature !== null || values.max_new_tokens !== null;
  ui.open.classList.toggle("has-settings", custom);
}

function fieldInput(name) {
  return name === "name" ? ui.presetName : $("settings-" + name);
}

function showFieldError(name, text) {
  var error = $((name === "name" ? "preset-name" : "settings-" + name) + "-error");
  var input = fieldInput(name);
  if (!error || !input) {
    ui.error.textContent = text;
    ui.error.hidden = false;
    return;
  }
  error.textContent = text;
  error.hidden = false;
  input.setAttribute("aria-invalid", "true");
}

function clearErrors() {
  ui.dialog.querySelectorAll(".error").forEach(function (node) {
    node.hidden = true;
    node.textContent = "";
  });
  ui.dialog.querySelectorAll("[aria-invalid]").forEach(function (node) {
    node.removeAttribute("aria-invalid");
  });
}

function focusFirstError() {
  var invalid = ui.dialog.querySelector("[aria-invalid=true]");
  if (invalid) {
    invalid.focus();
  }
}

// The form's values checked as the server checks them; null with errors shown if not.
function readForm() {
  var errors = {};
  var instructions = ui.instructions.value.trim();
  if (instructions.length > bounds.instructions) {
    errors.instructions = "Instructions can be at most " + numberFormat.format(bounds.instructions)
      + " characters long; these are " + numberFormat.format(instructions.length) + ".";
  }
  var temperature = null;
  var rawTemperature = ui.temperature.value.trim();
  if (rawTemperature !== "" || ui.temperature.validity.badInput) {
    temperature = Number(rawTemperature);
    if (rawTemperature === "" || isNaN(temperature) || temperature < 0 || temperature > bounds.temperature) {
      errors.temperature = "Temperature must be a number from 0 to " + bounds.temperature + ".";
    }
  }
  var length = null;
  var rawLength = ui.maxNewTokens.value.trim();
  if (rawLength !== "" || ui.maxNewTokens.validity.badInput) {
    length = Number(rawLength);
    if (rawLength === "" || !Number.isInteger(length) || length < 1 || length > bounds.maxNewTokens) {
      errors.max_new_tokens = "Answer length must be a whole number from 1 to "
        + bounds.maxNewTokens + ".";
    }
  }
  Object.keys(errors).forEach(function (name) {
    showFieldError(name, errors[name]);
  });
  if (Object.keys(errors).length) {
    focusFirstError();
    return null;
  }
  return { instructions: instructions, temperature: temperature, max_new_tokens: length };
}

function fillForm(values) {
  ui.instructions.value = values.instructions || "";
  ui.temperature.value = values.temperature === null || values.temperature === undefined ? "" : String(values.temperature);
  ui.maxNewTokens.value = values.max_new_tokens === null || values.max_new_tokens === undefined ? "" : String(values.max_new_tokens);
}

function showServerErrors(error) {
  var fields = error && error.fields ? error.fields : null;
  if (fields && Object.keys(fields).length) {
    Object.keys(fields).forEach(function (name) {
      showFieldError(name, String(fields[name]));
    });
    focusFirstError();
  } else {
    ui.error.textContent = error.detail;
    ui.error.hidden = false;
  }
}

// --- Presets ---------------------------------------------------------------------------

function renderPresets(selectedId) {
  var first = ui.presetSelect.options[0];
  ui.presetSelect.replaceChildren(first);
  presets.forEach(function (preset) {
    var option = make("option", "", preset.name);
    option.value = preset.id;
    ui.presetSelect.appendChild(option);
  });
  ui.presetSelect.value = selectedId || "";
  ui.presetDelete.disabled = !ui.presetSelect.value;
}

function loadPresets() {
  return api("presets").then(function (data) {
    presets = (data.presets || []).map(function (p) {
      return {
        id: String(p.id), name: String(p.name || ""), instructions: String(p.instructions || ""),
        temperature: typeof p.temperature === "number" ? p.temperature : null,
        max_new_tokens: typeof p.max_new_tokens === "number" ? p.max_new_tokens : null,
      };
    });
    renderPresets(ui.presetSelect.value);
  }).catch(function (error) {
    ui.error.textContent = error.detail;
    ui.error.hidden = false;
  });
}

function savePreset() {
  clearErrors();
  var values = readForm();
  if (!values) {
    return;
  }
  var name = ui.presetName.value.trim();
  if (!name) {
    showFieldError("name", "Give the preset a name.");
    focusFirstError();
    return;
  }
  ui.presetSave.disabled = true;
  api("presets", Object.assign({ name: name }, values)).then(function (data) {
    ui.presetName.value = "";
    return loadPresets().then(function () {
      renderPresets(data.preset ? String(data.preset.id) : "");
      announce("Preset \u201c" + name + "\u201d saved.");
    });
  }).catch(function (error) {
    showServerErrors(error);
  }).finally(function () {
    ui.presetSave.disabled = false;
  });
}

function deletePreset() {
  var id = ui.presetSelect.value;
  var preset = presets.find(function (p) { return p.id === id; });
  if (!preset) {
    return;
  }
  api("presets/" + encodeURIComponent(id) + "/delete", {}).then(function () {
    presets = presets.filter(function (p) { return p.id !== id; });
    renderPresets("");
    ui.presetSelect.focus();
    announce("Preset \u201c" + preset.name + "\u201d deleted.");
  }).catch(function (error) {
    ui.error.textContent = error.detail;
    ui.error.hidden = false;
  });
}

// --- The dialog ------------------------------------------------------------------------

function openDialog() {
  touched = false;
  clearErrors();
  fillForm(currentSettings());
  ui.scope.textContent = state.currentId === null
    ? "These settings apply to the conversation your next message starts."
    : "These settings apply to the next answers in this conversation.";
  openedFrom = document.activeElement;
  renderPresets("");
  loadPresets();
  ui.dialog.showModal();
  ui.instructions.focus();
}

function closeDialog() {
  ui.dialog.close();
}

function saveSettings() {
  clearErrors();
  var values = readForm();
  if (!values) {
    return;
  }
  if (state.currentId === null) {
    showSettingsOf(values);
    closeDialog();
    announce("Settings saved; your next message starts a conversation with them.");
    return;
  }
  var id = state.currentId;
  ui.save.disabled = true;
  api(conversationPath(id) + "/settings", values).then(function (data) {
    if (id === state.currentId) {
      showSettingsOf(data.settings);
    }
    closeDialog();
    announce("Settings saved.");
  }).catch(function (error) {
    showServerErrors(error);
  }).finally(function () {
    ui.save.disabled = false;
  });
}

export function initSettings() {
  ui = {
    open: $("settings-open"),
    dialog: $("settings-dialog"),
    form: $("settings-form"),
    scope: $("settings-scope"),
    instructions: $("settings-instructions"),
    temperature: $("settings-temperature"),
    maxNewTokens: $("settings-max_new_tokens"),
    presetSelect: $("preset-select"),
    presetDelete: $("preset-delete"),
    presetName: $("preset-name"),
    presetSave: $("preset-save"),
    error: $("settings-error"),
    cancel: $("settings-cancel"),
    save: $("settings-save"),
  };
  ui.open.addEventListener("click", openDialog);
  ui.cancel.addEventListener("click", closeDialog);
  ui.form.addEventListener("submit", function (event) {
    event.preventDefault();
    saveSettings();
  });
  ui.form.addEventListener("input", function () {
    touched = true;
  });
  ui.presetSelect.addEventListener("change", function () {
    var preset = presets.find(function (p) { return p.id === ui.presetSelect.value; });
    ui.presetDelete.disabled = !preset;
    if (preset) {
      clearErrors();
      fillForm(preset);
      announce("Preset \u201c" + preset.name + "\u201d filled in; save the settings to use it.");
    }
  });
  ui.presetDelete.addEventListener("click", deletePreset);
  ui.presetSave.addEventListener("click", savePreset);
  ui.presetName.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      savePreset();
    }
  });
  ui.dialog.addEventListener("close", function () {
    var back = openedFrom && openedFrom.isConnected ? openedFrom : ui.open;
    openedFrom = null;
    back.focus();
  });
  FIELDS.forEach(function (name) {
    fieldInput(name).addEventListener("input", function () {
      var error = $("settings-" + name + "-error");
      if (!error.hidden) {
        error.hidden = true;
        fieldInput(name).removeAttribute("aria-invalid");
      }
    });
  });
  markButton();
}
