// The messages of the conversation shown: user and assistant message nodes, their badges,
// notes, version switchers and actions (edit, regenerate, details), rendering a loaded
// conversation, rendering streaming answers at most every
// RENDER_INTERVAL_MS, and keeping the view at the latest text while the user has not
// scrolled away from it.

import { showCitations } from "./documents.js";
import { el, state } from "./page.js";
import { renderMarkdownInto } from "./markdown.js";
import { copyButton, isUuid, make, numberFormat, svgIcon } from "./util.js";

// Markdown is re-rendered at most this often while an answer streams (milliseconds).
var RENDER_INTERVAL_MS = 100;
// The user has scrolled away from the latest text when further than this from the end (px).
var STICK_THRESHOLD_PX = 48;

// The Markdown source of each assistant message node, for its Copy button.
export var messageSource = new WeakMap();
// The text of each user message node, for its Edit form.
export var questionText = new WeakMap();
// The ids of each message node's versions (itself included), oldest first.
export var messageVersions = new WeakMap();

var ICON_EDIT = "M4 20h4L19 9l-4-4L4 16zM13 7l4 4";
var ICON_REGENERATE = "M20 11a8 8 0 1 0-2.3 5.7M20 5v6h-6";
var ICON_PREVIOUS = "M15 6l-6 6 6 6";
var ICON_NEXT = "M9 6l6 6-6 6";

var stickToBottom = true;

export var BADGES = {
  cancelled: {
    className: "badge badge-stopped", text: "Stopped", note: "You stopped this answer.",
  },
  error: {
    className: "badge badge-error", text: "Error", note: "This answer could not be finished.",
  },
  length: {
    className: "badge badge-length", text: "Cut off", note: "This answer reached the length limit.",
  },
  streaming: { className: "badge badge-pending", text: "Still being written", note: "" },
  interrupted: {
    className: "badge badge-error",
    text: "Connection lost",
    note: "The connection dropped while this answer was arriving; "
      + "the page shows the saved text once it is back.",
  },
};

export function findMessage(id) {
  return el.messages.querySelector('[data-message-id="' + CSS.escape(id) + '"]');
}

function actionButton(className, icon, text, label) {
  var button = make("button", "action-button " + className);
  button.type = "button";
  button.appendChild(svgIcon(icon));
  button.appendChild(make("span", "action-label", text));
  if (label) {
    button.setAttribute("aria-label", label);
  }
  return button;
}

// "< 2/3 >" for a message with several versions; nothing for a message with one.
export function setVersions(node, versions) {
  var id = node.dataset.messageId;
  versions = (versions || []).filter(isUuid);
  if (!versions.length && id) {
    versions = [id];
  }
  messageVersions.set(node, versions);
  var old = node.querySelector(".versions");
  if (old) {
    old.remove();
  }
  if (versions.length < 2) {
    return;
  }
  var index = versions.indexOf(id);
  var who = node.classList.contains("message-user") ? "question" : "answer";
  var group = make("div", "versions");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Versions of this " + who);
  var previous = actionButton("version-previous", ICON_PREVIOUS, "", "Previous version");
  previous.disabled = index <= 0;
  var next = actionButton("version-next", ICON_NEXT, "", "Next version");
  next.disabled = index === versions.length - 1;
  var position = make("span", "version-position");
  var shown = make("span", "", (index + 1) + "/" + versions.length);
  shown.setAttribute("aria-hidden", "true");
  position.appendChild(shown);
  position.appendChild(make("span", "visually-hidden", "Version " + (index + 1) + " of " + versions.length));
  group.appendChild(previous);
  group.appendChild(position);
  group.appendChild(next);
  node.querySelector(".message-actions").prepend(group);
}

export function userMessageNode(message) {
  var node = make("article", "message message-user");
  if (message.id) {
    node.dataset.messageId = message.id;
  }
  node.appendChild(make("h2", "visually-hidden", "You said:"));
  node.appendChild(make("div", "message-body", message.content));
  questionText.set(node, message.content);
  var actions = make("div", "message-actions");
  actions.appendChild(actionButton("edit-button", ICON_EDIT, "Edit", "Edit this question and ask again"));
  node.appendChild(actions);
  setVersions(node, message.versions);
  return node;
}

// The question node that was pending gets its stored id: it can be edited from now on.
export function questionStored(node, id, versions) {
  node.dataset.messageId = id;
  setVersions(node, versions || [id]);
}

function detailRows(message) {
  var rows = [];
  var tokens = message.completion_tokens;
  if (typeof tokens === "number") {
    rows.push(["Answer tokens", numberFormat.format(tokens)]);
  }
  if (typeof message.prompt_tokens === "number") {
    rows.push(["Prompt tokens", numberFormat.format(message.prompt_tokens)]);
  }
  var first = message.time_to_first_token_ms;
  if (typeof first === "number") {
    rows.push(["Time to first token", numberFormat.format(first) + " ms"]);
  }
  var duration = message.duration_ms;
  if (typeof tokens === "number" && typeof duration === "number" && typeof first === "number"
      && duration > first && tokens > 1) {
    var rate = (tokens - 1) / ((duration - first) / 1000);
    rows.push(["Tokens per second", rate.toFixed(1)]);
  }
  return rows;
}

// The answer's numbers (tokens, time to first token, tokens per second), shown on demand.
export function setDetails(node, message) {
  var details = node.querySelector(".answer-details");
  var rows = detailRows(message);
  details.hidden = rows.length === 0;
  var list = details.querySelector("dl");
  list.replaceChildren();
  rows.forEach(function (row) {
    list.appendChild(make("dt", "", row[0]));
    list.appendChild(make("dd", "", row[1]));
  });
}

export function assistantMessageNode(message) {
  var node = make("article", "message message-assistant");
  node.dataset.messageId = message.id;
  var meta = make("div", "message-meta");
  var author = make("h2", "message-author", "Assistant");
  meta.appendChild(author);
  if (message.model) {
    meta.appendChild(make("span", "message-model", message.model));
  }
  meta.appendChild(copyButton("copy-message", "Copy answer as Markdown"));
  node.appendChild(meta);
  node.appendChild(make("div", "message-body markdown"));
  var typing = make("div", "typing");
  typing.setAttribute("aria-hidden", "true");
  typing.appendChild(make("span"));
  typing.appendChild(make("span"));
  typing.appendChild(make("span"));
  node.appendChild(typing);
  node.appendChild(make("p", "message-note"));
  var actions = make("div", "message-actions");
  var regenerate = actionButton("regenerate-button", ICON_REGENERATE, "Regenerate", "Regenerate this answer");
  regenerate.setAttribute("aria-keyshortcuts", "Alt+R");
  regenerate.title = "Regenerate (Alt+R)";
  actions.appendChild(regenerate);
  var details = make("details", "answer-details");
  details.appendChild(make("summary", "", "Details"));
  details.appendChild(make("dl"));
  actions.appendChild(details);
  node.appendChild(actions);
  setDetails(node, message);
  setVersions(node, message.versions);
  return node;
}

// Regenerate only on the conversation's last answer, edits and version changes only while
// nothing is being sent or written in it.
export function updateMessageActions(busy) {
  var answers = el.messages.querySelectorAll(".message-assistant");
  answers.forEach(function (node, index) {
    node.querySelector(".regenerate-button").hidden = busy || index !== answers.length - 1
      || node.classList.contains("is-streaming");
  });
  el.messages.querySelectorAll(".edit-button").forEach(function (button) {
    var node = button.closest(".message");
    button.hidden = busy || !node.dataset.messageId || node.classList.contains("is-editing");
  });
  el.messages.querySelectorAll(".versions button").forEach(function (button) {
    button.dataset.busy = busy ? "true" : "";
    button.setAttribute("aria-disabled", busy ? "true" : "false");
  });
}

// status: "live" (arriving on this socket), or a stored status, or "length"/"interrupted".
export function showAssistant(node, text, status) {
  var live = status === "live";
  messageSource.set(node, text);
  node.classList.toggle("is-streaming", live);
  node.setAttribute("aria-busy", live ? "true" : "false");
  renderMarkdownInto(node.querySelector(".message-body"), text);
  var meta = node.querySelector(".message-meta");
  var old = meta.querySelector(".badge");
  if (old) {
    old.remove();
  }
  var badge = BADGES[status];
  var note = node.querySelector(".message-note");
  note.textContent = badge ? badge.note : "";
  note.hidden = !note.textContent;
  if (badge) {
    meta.insertBefore(make("span", badge.className, badge.text), meta.querySelector(".copy-message"));
  }
  node.querySelector(".copy-message").hidden = live || !text;
}

export function updateEmptyState() {
  el.emptyState.hidden = el.messages.childElementCount > 0 || el.messages.classList.contains("is-loading");
}

function scrollDistanceFromEnd() {
  return el.scroller.scrollHeight - el.scroller.scrollTop - el.scroller.clientHeight;
}

export function scrollToEnd() {
  el.scroller.scrollTop = el.scroller.scrollHeight;
  stickToBottom = true;
  el.jumpLatest.hidden = true;
}

// After content changed: follow it only while the user has not scrolled away.
export function contentChanged() {
  if (stickToBottom) {
    scrollToEnd();
  } else {
    el.jumpLatest.hidden = scrollDistanceFromEnd() < STICK_THRESHOLD_PX;
  }
}

// Shows a loaded conversation ({id, messages}); answers streaming on this socket show their
// text so far. Returns true when a stored answer is still being written elsewhere.
export function renderConversation(data, keepScroll) {
  el.messages.replaceChildren();
  var seen = new Set();
  var needsRefresh = false;
  (data.messages || []).forEach(function (message) {
    if (message.role === "user") {
      el.messages.appendChild(userMessageNode({
        id: isUuid(message.id) ? message.id : "",
        content: String(message.content || ""),
        versions: (message.versions || []).filter(isUuid),
      }));
      return;
    }
    if (message.role !== "assistant" || !isUuid(message.id)) {
      return;
    }
    seen.add(message.id);
    var node = assistantMessageNode(message);
    el.messages.appendChild(node);
    var live = state.live.get(message.id);
    if (live) {
      showAssistant(node, live.text, "live");
    } else {
      showAssistant(node, String(message.content || ""), message.status);
      showCitations(node, message.citations);
      needsRefresh = needsRefresh || message.status === "streaming";
    }
  });
  var liveId = state.liveByConversation.get(data.id);
  if (liveId && !seen.has(liveId)) {
    var live = state.live.get(liveId);
    var node = assistantMessageNode(live);
    el.messages.appendChild(node);
    showAssistant(node, live.text, "live");
  }
  updateEmptyState();
  if (!keepScroll) {
    scrollToEnd();
  }
  return needsRefresh;
}

// --- Throttled rendering of streaming answers ------------------------------------------

var dirty = new Set();
var renderTimer = 0;
var lastRender = 0;

export function scheduleRender(id) {
  dirty.add(id);
  if (renderTimer) {
    return;
  }
  var wait = Math.max(0, RENDER_INTERVAL_MS - (performance.now() - lastRender));
  renderTimer = window.setTimeout(function () {
    window.requestAnimationFrame(flushRenders);
  }, wait);
}

// An answer that finished is shown whole by its caller: no throttled render is due for it.
export function forgetRender(id) {
  dirty.delete(id);
}

function flushRenders() {
  renderTimer = 0;
  lastRender = performance.now();
  dirty.forEach(function (id) {
    var live = state.live.get(id);
    var node = findMessage(id);
    if (live && node) {
      showAssistant(node, live.text, "live");
    }
  });
  dirty.clear();
  contentChanged();
}

// --- Following the latest text ---------------------------------------------------------

export function initScrolling() {
  el.scroller.addEventListener("scroll", function () {
    stickToBottom = scrollDistanceFromEnd() < STICK_THRESHOLD_PX;
    if (stickToBottom) {
      el.jumpLatest.hidden = true;
    }
  }, { passive: true });
  // Any move upwards by the user lets go of the end at once, before a render can pull back.
  el.scroller.addEventListener("wheel", function (event) {
    if (event.deltaY < 0) {
      stickToBottom = false;
    }
  }, { passive: true });
  el.scroller.addEventListener("keydown", function (event) {
    if (["ArrowUp", "PageUp", "Home"].indexOf(event.key) !== -1) {
      stickToBottom = false;
    }
  });
  el.scroller.addEventListener("touchstart", function () {
    stickToBottom = false;
  }, { passive: true });
  el.jumpLatest.addEventListener("click", function () {
    scrollToEnd();
    el.input.focus();
  });
}
