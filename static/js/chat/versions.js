// Other versions of a conversation: regenerate the latest answer (its button or Alt+R),
// edit a question and ask it again, and flip between the versions of a message ("< 2/3 >").
// What a version replaces stays stored; the server keeps which version is shown.

import { api, conversationPath } from "./api.js";
import { announce, config, el, state } from "./page.js";
import {
  messageVersions,
  questionText,
  renderConversation,
  setVersions,
  userMessageNode,
} from "./messages.js";
import { currentGeneration, showComposerError, updateComposer } from "./composer.js";
import { sendFrame } from "./socket.js";
import { charCount, make, newClientId, numberFormat } from "./util.js";

function busy() {
  return state.pending !== null || currentGeneration() || !state.connected;
}

function refuseWhileBusy() {
  if (!state.connected) {
    showComposerError("Not connected to the server yet; try again once the connection is back.");
  } else {
    showComposerError("Wait for the answer to finish, or stop it, first.");
  }
}

// --- Regenerate --------------------------------------------------------------------------

export function regenerateLatest() {
  var answers = el.messages.querySelectorAll(".message-assistant");
  var node = answers[answers.length - 1];
  if (!node || state.currentId === null) {
    return;
  }
  if (busy()) {
    refuseWhileBusy();
    return;
  }
  var clientId = newClientId();
  var versions = (messageVersions.get(node) || [node.dataset.messageId]).slice();
  state.pending = {
    kind: "regenerate",
    clientId: clientId,
    conversation: state.currentId,
    viewSeq: state.viewSeq,
    node: node,
    onStarted: function (questionId, answerId) {
      node.remove();
      versions.push(answerId);
      return versions;
    },
    onAbandon: function (detail) {
      showComposerError(detail);
      el.input.focus();
    },
  };
  sendFrame(JSON.stringify({ type: "chat.regenerate", conversation: state.currentId, client_id: clientId }));
  announce("Writing a new version of the answer.");
  // The old answer's button goes away with it: the keyboard waits in the composer, where
  // Escape stops the new answer.
  el.input.focus();
  updateComposer();
}

// --- Edit and ask again ------------------------------------------------------------------

function startEdit(node) {
  if (busy()) {
    refuseWhileBusy();
    return;
  }
  if (node.classList.contains("is-editing")) {
    return;
  }
  var id = node.dataset.messageId;
  var body = node.querySelector(".message-body");
  var form = make("form", "edit-form");
  form.noValidate = true;
  var inputId = "edit-" + id;
  var label = make("label", "visually-hidden", "Your question, edited");
  label.htmlFor = inputId;
  var input = make("textarea", "edit-input");
  input.id = inputId;
  input.rows = 3;
  input.value = questionText.get(node) || "";
  var hint = make("p", "edit-hint", "The answers after this question stay as an earlier version. "
    + "Ctrl+Enter sends, Escape cancels.");
  hint.id = inputId + "-hint";
  var error = make("p", "error edit-error");
  error.id = inputId + "-error";
  error.setAttribute("role", "alert");
  error.hidden = true;
  input.setAttribute("aria-describedby", hint.id + " " + error.id);
  var buttons = make("div", "edit-actions");
  var cancel = make("button", "button secondary", "Cancel");
  cancel.type = "button";
  var save = make("button", "button", "Send");
  save.type = "submit";
  buttons.appendChild(cancel);
  buttons.appendChild(save);
  form.appendChild(label);
  form.appendChild(input);
  form.appendChild(hint);
  form.appendChild(error);
  form.appendChild(buttons);
  body.hidden = true;
  node.classList.add("is-editing");
  node.insertBefore(form, body.nextSibling);
  updateComposer();
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);

  function end() {
    form.remove();
    body.hidden = false;
    node.classList.remove("is-editing");
    updateComposer();
    var button = node.querySelector(".edit-button");
    if (button) {
      button.focus();
    }
  }

  function fail(detail) {
    error.textContent = detail;
    error.hidden = false;
    input.readOnly = false;
    save.disabled = false;
    input.focus();
  }

  function submit() {
    var content = input.value;
    if (!content.trim()) {
      fail("Type your question, or press Escape to keep it as it was.");
      return;
    }
    if (config.maxChars > 0 && charCount(content) > config.maxChars) {
      fail("Your question is too long. Shorten it to " + numberFormat.format(config.maxChars)
        + " characters or fewer.");
      return;
    }
    if (busy()) {
      fail("Wait for the answer to finish, or stop it, first.");
      return;
    }
    error.hidden = true;
    input.readOnly = true;
    save.disabled = true;
    var clientId = newClientId();
    var versions = (messageVersions.get(node) || [id]).slice();
    var seq = state.viewSeq;
    state.pending = {
      kind: "edit",
      clientId: clientId,
      conversation: state.currentId,
      viewSeq: seq,
      node: node,
      onStarted: function (questionId) {
        // The edited question and everything after it give way to the new thread.
        while (node.nextSibling) {
          node.nextSibling.remove();
        }
        var asked = userMessageNode({ content: content });
        if (questionId) {
          asked.dataset.messageId = questionId;
          versions.push(questionId);
          setVersions(asked, versions);
        }
        node.replaceWith(asked);
        el.input.focus();
        return null;
      },
      onAbandon: fail,
    };
    sendFrame(JSON.stringify({
      type: "chat.edit",
      conversation: state.currentId,
      message: id,
      content: content,
      client_id: clientId,
    }));
    updateComposer();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });
  cancel.addEventListener("click", end);
  input.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      if (!input.readOnly) {
        end();
      }
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
}

// --- Flip between versions ---------------------------------------------------------------

function showVersion(node, step) {
  if (busy()) {
    refuseWhileBusy();
    return;
  }
  var versions = messageVersions.get(node) || [];
  var target = versions[versions.indexOf(node.dataset.messageId) + step];
  if (!target) {
    return;
  }
  var index = Array.prototype.indexOf.call(el.messages.children, node);
  var control = step < 0 ? ".version-previous" : ".version-next";
  var id = state.currentId;
  var seq = state.viewSeq;
  api(conversationPath(id) + "/version", { message: target }).then(function (data) {
    if (seq !== state.viewSeq) {
      return;
    }
    renderConversation({ id: id, messages: data.messages }, true);
    updateComposer();
    var shown = el.messages.children[index];
    if (shown) {
      var position = shown.querySelector(".version-position .visually-hidden");
      announce((position ? position.textContent : "Another version") + " shown.");
      var button = shown.querySelector(control);
      (button && !button.disabled ? button : shown.querySelector(".versions button:not([disabled])") || el.input).focus();
    }
  }).catch(function (error) {
    showComposerError(error.detail);
  });
}

export function initVersions() {
  el.messages.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button || !el.messages.contains(button)) {
      return;
    }
    var node = button.closest(".message");
    if (button.classList.contains("regenerate-button")) {
      regenerateLatest();
    } else if (button.classList.contains("edit-button")) {
      startEdit(node);
    } else if (button.classList.contains("version-previous")) {
      showVersion(node, -1);
    } else if (button.classList.contains("version-next")) {
      showVersion(node, 1);
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.altKey && !event.ctrlKey && !event.metaKey && event.code === "KeyR") {
      event.preventDefault();
      regenerateLatest();
    }
  });
}
