// The composer: the input box that grows with its text, the character counter, Send and
// Stop, and the error line above the box. A message over the character limit, or whose
// frame would be larger than the server accepts, is refused here and never sent.

import { selectedSources } from "./documents.js";
import { announce, config, el, state } from "./page.js";
import { scrollToEnd, updateEmptyState, updateMessageActions, userMessageNode } from "./messages.js";
import { chosenModel } from "./models.js";
import { sendFrame } from "./socket.js";
import { draftForFirstMessage } from "./settings.js";
import { charCount, newClientId, numberFormat, utf8Length } from "./util.js";

// The character counter appears from this share of the limit onwards.
var COUNTER_FROM = 0.8;
// The websocket server (daphne) closes a socket that sends a message over 1 MiB.
var SERVER_MESSAGE_MAX_BYTES = 1024 * 1024;

var growsByItself = window.CSS && CSS.supports && CSS.supports("field-sizing", "content");
var overLimit = false;

// The largest frame the server takes: chat/protocol.py max_frame_bytes() (six bytes per
// character of the message and instructions limits, plus 1024 for the rest of the frame),
// and never over 1 MiB.
function maxFrameBytes() {
  var limit = SERVER_MESSAGE_MAX_BYTES;
  if (config.maxChars > 0) {
    limit = Math.min(limit, (config.maxChars + config.maxInstructions) * 6 + 1024);
  }
  return limit;
}

export function resizeInput() {
  if (growsByItself) {
    return;
  }
  el.input.style.height = "auto";
  el.input.style.height = el.input.scrollHeight + 2 + "px";
}

export function currentGeneration() {
  return state.currentId !== null && state.liveByConversation.has(state.currentId);
}

export function updateComposer() {
  var text = el.input.value;
  var count = charCount(text);
  var limit = config.maxChars;
  var over = limit > 0 && count > limit;
  if (limit > 0 && count >= limit * COUNTER_FROM) {
    el.count.textContent = over
      ? numberFormat.format(count - limit) + (count - limit === 1 ? " character" : " characters")
        + " too many (limit " + numberFormat.format(limit) + ")"
      : numberFormat.format(count) + " / " + numberFormat.format(limit) + " characters";
  } else {
    el.count.textContent = "";
  }
  el.count.classList.toggle("is-over", over);
  if (over && !overLimit) {
    announce("Your message is longer than " + numberFormat.format(limit)
      + " characters. Shorten it to send.");
  }
  overLimit = over;

  var streaming = currentGeneration();
  el.stop.hidden = !streaming;
  el.send.hidden = streaming;
  el.stop.disabled = state.stopping;
  el.stop.querySelector("span").textContent = state.stopping ? "Stopping\u2026" : "Stop";
  el.send.disabled = !text.trim() || over || state.pending !== null || !state.connected;
  el.input.readOnly = state.pending !== null;
  el.composer.classList.toggle("is-pending", state.pending !== null);
  updateMessageActions(streaming || state.pending !== null || !state.connected);
}

export function showComposerError(detail) {
  el.error.textContent = detail;
  el.error.hidden = false;
}

export function clearComposerError() {
  el.error.hidden = true;
  el.error.textContent = "";
}

function send() {
  if (state.pending) {
    return;
  }
  var content = el.input.value;
  if (!content.trim()) {
    return;
  }
  if (currentGeneration()) {
    showComposerError("Wait for the answer to finish, or stop it, before sending the next message.");
    return;
  }
  if (config.maxChars > 0 && charCount(content) > config.maxChars) {
    showComposerError("Your message is too long. Shorten it to "
      + numberFormat.format(config.maxChars) + " characters or fewer.");
    return;
  }
  var clientId = newClientId();
  var message = {
    type: "chat.send",
    conversation: state.currentId,
    content: content,
    client_id: clientId,
  };
  var sources = selectedSources();
  if (sources) {
    message.sources = sources;
  }
  if (state.currentId === null) {
    // A new conversation starts with the settings chosen for it; it keeps them.
    var draft = draftForFirstMessage();
    if (draft.instructions) {
      message.instructions = draft.instructions;
    }
    if (Object.keys(draft.params).length) {
      message.params = draft.params;
    }
  }
  var model = chosenModel();
  if (model) {
    message.model = model;
  }
  var frame = JSON.stringify(message);
  var frameBytes = utf8Length(frame);
  if (frameBytes > maxFrameBytes()) {
    showComposerError("Your message is too large to send: it takes "
      + numberFormat.format(frameBytes) + " bytes and the server accepts at most "
      + numberFormat.format(maxFrameBytes()) + ". Shorten it or split it into several messages.");
    return;
  }
  if (!state.connected) {
    showComposerError("Not connected to the server yet. Your message is kept here; "
      + "send it once the connection is back.");
    return;
  }
  clearComposerError();
  var node = userMessageNode({ content: content });
  node.classList.add("is-pending");
  el.messages.appendChild(node);
  updateEmptyState();
  scrollToEnd();
  state.pending = {
    kind: "send",
    clientId: clientId,
    conversation: state.currentId,
    content: content,
    viewSeq: state.viewSeq,
    node: node,
  };
  sendFrame(frame);
  updateComposer();
}

// The send failed before the answer started: the text stays in the composer (a regenerate
// or an edit says so where it was asked for, through its own onAbandon).
export function abandonPending(detail) {
  var pending = state.pending;
  state.pending = null;
  if (pending.onAbandon) {
    pending.onAbandon(detail);
    updateComposer();
    return;
  }
  if (pending.node && pending.node.parentNode) {
    pending.node.remove();
  }
  updateEmptyState();
  showComposerError(detail);
  updateComposer();
  el.input.focus();
}

export function stopGeneration() {
  var id = state.currentId;
  if (!id || !state.liveByConversation.has(id) || !state.connected) {
    return;
  }
  state.stopping = true;
  sendFrame(JSON.stringify({ type: "chat.stop", conversation: id }));
  updateComposer();
}

export function initComposer() {
  el.composer.addEventListener("submit", function (event) {
    event.preventDefault();
    send();
  });

  el.input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    }
  });

  el.input.addEventListener("input", function () {
    resizeInput();
    updateComposer();
    if (!el.error.hidden && el.input.value.trim()) {
      clearComposerError();
    }
  });

  el.stop.addEventListener("click", stopGeneration);

  // Escape stops the answer being written, from anywhere on the page that does not use
  // Escape itself (an open menu, a dialog, the rename and edit fields handle it first).
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.defaultPrevented && currentGeneration()
        && !document.querySelector("dialog[open]")) {
      event.preventDefault();
      stopGeneration();
      announce("Stopping the answer.");
    }
  });
}
