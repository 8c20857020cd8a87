// The answers arriving on the websocket: chat.started, chat.delta, chat.done and error
// frames, and what becomes of answers and a pending send when the connection drops.

import { showCitations } from "./documents.js";
import { announce, el, state } from "./page.js";
import {
  BADGES,
  assistantMessageNode,
  contentChanged,
  findMessage,
  forgetRender,
  questionStored,
  scheduleRender,
  setDetails,
  setVersions,
  showAssistant,
  updateEmptyState,
} from "./messages.js";
import { abandonPending, resizeInput, showComposerError, updateComposer } from "./composer.js";
import { conversationById, refreshConversations } from "./conversations.js";
import { refreshStatus } from "./status.js";
import { isUuid } from "./util.js";

// Long answers are announced up to this many characters; the rest is on the page.
var ANNOUNCE_MAX_CHARS = 4000;

// The socket closed: a send not yet started is given back to the composer, and answers
// that were arriving show what came, marked as interrupted.
export function connectionLost() {
  if (state.pending) {
    abandonPending("The connection dropped before the answer started. Your message is kept "
      + "here: check the conversation once the connection is back, then send it again if it "
      + "is missing.");
  }
  state.live.forEach(function (live) {
    var node = findMessage(live.id);
    if (node) {
      showAssistant(node, live.text, "interrupted");
    }
  });
  state.live.clear();
  state.liveByConversation.clear();
  state.stopping = false;
  updateComposer();
}

export function handleFrame(raw) {
  var frame;
  try {
    frame = JSON.parse(raw);
  } catch (e) {
    return;
  }
  if (!frame || typeof frame !== "object") {
    return;
  }
  if (frame.type === "chat.started") {
    onStarted(frame);
  } else if (frame.type === "chat.delta") {
    onDelta(frame);
  } else if (frame.type === "chat.done") {
    onDone(frame);
  } else if (frame.type === "error") {
    onError(frame);
  }
}

function onStarted(frame) {
  if (!isUuid(frame.conversation) || !isUuid(frame.message)) {
    return;
  }
  var conversationId = frame.conversation.toLowerCase();
  var messageId = frame.message.toLowerCase();
  var live = { id: messageId, conversation: conversationId, text: "", model: String(frame.model || "") };
  state.live.set(messageId, live);
  state.liveByConversation.set(conversationId, messageId);

  var pending = state.pending;
  var ours = pending && (!frame.client_id || frame.client_id === pending.clientId);
  var questionId = isUuid(frame.question) ? frame.question.toLowerCase() : "";
  // The versions the new answer joins (a regenerated answer's), kept for its switcher.
  var versions = null;
  if (ours) {
    state.pending = null;
    if (pending.kind === "send") {
      if (el.input.value === pending.content) {
        el.input.value = "";
        resizeInput();
      }
      pending.node.classList.remove("is-pending");
      if (questionId && pending.node.isConnected) {
        questionStored(pending.node, questionId);
      }
    } else if (pending.viewSeq === state.viewSeq) {
      versions = pending.onStarted(questionId, messageId);
    }
    if (pending.viewSeq === state.viewSeq && state.currentId === null) {
      state.currentId = conversationId;
      window.history.replaceState(null, "", "#c/" + conversationId);
    }
  }
  if (state.currentId === conversationId && !findMessage(messageId)) {
    var node = assistantMessageNode(live);
    el.messages.appendChild(node);
    if (versions) {
      setVersions(node, versions);
    }
    showAssistant(node, "", "live");
    updateEmptyState();
    contentChanged();
  }
  announce("The assistant is answering.");
  if (!conversationById(conversationId)) {
    refreshConversations();
  }
  updateComposer();
}

function onDelta(frame) {
  var live = isUuid(frame.message) ? state.live.get(frame.message.toLowerCase()) : null;
  if (!live || typeof frame.text !== "string") {
    return;
  }
  live.text += frame.text;
  if (live.conversation === state.currentId) {
    scheduleRender(live.id);
  }
}

var FINISH_STATUS = { stop: "complete", length: "length", cancelled: "cancelled", error: "error" };

function onDone(frame) {
  var id = isUuid(frame.message) ? frame.message.toLowerCase() : null;
  var live = id ? state.live.get(id) : null;
  if (!live) {
    return;
  }
  state.live.delete(id);
  forgetRender(id);
  if (state.liveByConversation.get(live.conversation) === id) {
    state.liveByConversation.delete(live.conversation);
  }
  if (live.conversation === state.currentId) {
    state.stopping = false;
  }
  var status = FINISH_STATUS[frame.finish_reason] || "complete";
  var node = findMessage(id);
  if (node) {
    showAssistant(node, live.text, status);
    showCitations(node, frame.citations);
    var usage = frame.usage && typeof frame.usage === "object" ? frame.usage : {};
    setDetails(node, {
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      time_to_first_token_ms: frame.time_to_first_token_ms,
      duration_ms: frame.duration_ms,
    });
    contentChanged();
    var spoken = node.querySelector(".message-body").textContent.trim();
    if (spoken.length > ANNOUNCE_MAX_CHARS) {
      spoken = spoken.slice(0, ANNOUNCE_MAX_CHARS) + "\u2026";
    }
    var ending = BADGES[status] ? " " + BADGES[status].note : "";
    announce("Assistant: " + spoken + ending);
  }
  var focusLost = document.activeElement === document.body || document.activeElement === el.stop;
  updateComposer();
  // Stop and the answer's own controls hide while it ends: keep the keyboard in the composer.
  if (live.conversation === state.currentId && focusLost) {
    el.input.focus();
  }
  refreshConversations();
}

function onError(frame) {
  var detail = typeof frame.detail === "string" && frame.detail
    ? frame.detail
    : "Something went wrong. Try again in a moment.";
  var pending = state.pending;
  if (pending && (!frame.client_id || frame.client_id === pending.clientId)) {
    abandonPending(detail);
  } else if (frame.code !== "nothing_to_stop") {
    // nothing_to_stop only means the answer ended as Stop was pressed: the page shows that.
    showComposerError(detail);
  }
  if (state.stopping) {
    state.stopping = false;
    updateComposer();
  }
  if (frame.code === "no_worker") {
    refreshStatus();
  } else if (frame.code === "not_found") {
    refreshConversations();
  }
}
