// The messages of the conversation shown: user and assistant message nodes, their badges
// and notes, rendering a loaded conversation, rendering streaming answers at most every
// RENDER_INTERVAL_MS, and keeping the view at the latest text while the user has not
// scrolled away from it.

import { showCitations } from "./documents.js";
import { el, state } from "./page.js";
import { renderMarkdownInto } from "./markdown.js";
import { copyButton, isUuid, make } from "./util.js";

// Markdown is re-rendered at most this often while an answer streams (milliseconds).
var RENDER_INTERVAL_MS = 100;
// The user has scrolled away from the latest text when further than this from the end (px).
var STICK_THRESHOLD_PX = 48;

// The Markdown source of each assistant message node, for its Copy button.
export var messageSource = new WeakMap();

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

export function userMessageNode(content) {
  var node = make("article", "message message-user");
  node.appendChild(make("h2", "visually-hidden", "You said:"));
  node.appendChild(make("div", "message-body", content));
  return node;
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
  return node;
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
export function renderConversation(data) {
  el.messages.replaceChildren();
  var seen = new Set();
  var needsRefresh = false;
  (data.messages || []).forEach(function (message) {
    if (message.role === "user") {
      el.messages.appendChild(userMessageNode(String(message.content || "")));
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
  scrollToEnd();
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
