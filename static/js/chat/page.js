// The chat page's shared parts: its elements, the settings the template writes into
// data attributes, the state every part of the page reads, and two page-wide actions
// (speaking to screen readers, reloading once the session has ended).

export var app = document.getElementById("chat-app");

var dataset = app ? app.dataset : {};

export var config = {
  wsPath: dataset.wsPath || "/ws/chat/",
  maxChars: parseInt(dataset.maxChars, 10) || 0,
  maxInstructions: parseInt(dataset.maxInstructions, 10) || 0,
  apiUrl: dataset.apiUrl || "/chat/api/",
  exportUrl: dataset.exportUrl || "/chat/conversations/",
};

var csrfMeta = document.querySelector('meta[name="csrf-token"]');
export var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

export var SITE_NAME = document.title.split(" \u00b7 ").slice(1).join(" \u00b7 ") || document.title;

export var el = {
  sidebar: document.getElementById("chat-sidebar"),
  sidebarToggle: document.getElementById("sidebar-toggle"),
  sidebarClose: document.getElementById("sidebar-close"),
  backdrop: document.getElementById("sidebar-backdrop"),
  newConversation: document.getElementById("new-conversation"),
  list: document.getElementById("conversation-list"),
  listScroller: document.getElementById("conversation-scroller"),
  listHeading: document.getElementById("list-heading"),
  loadMore: document.getElementById("load-more"),
  archiveToggle: document.getElementById("archive-toggle"),
  listStatus: document.getElementById("conversation-list-status"),
  title: document.getElementById("conversation-title"),
  origin: document.getElementById("conversation-origin"),
  workerStatus: document.getElementById("worker-status"),
  workerStatusText: document.getElementById("worker-status-text"),
  workerNotice: document.getElementById("worker-notice"),
  banner: document.getElementById("connection-banner"),
  bannerText: document.getElementById("connection-text"),
  reconnectNow: document.getElementById("reconnect-now"),
  scroller: document.getElementById("messages"),
  emptyState: document.getElementById("empty-state"),
  messages: document.getElementById("message-list"),
  jumpLatest: document.getElementById("jump-latest"),
  composer: document.getElementById("composer"),
  input: document.getElementById("composer-input"),
  send: document.getElementById("send-button"),
  stop: document.getElementById("stop-button"),
  count: document.getElementById("composer-count"),
  error: document.getElementById("composer-error"),
  announcer: document.getElementById("announcer"),
  deleteDialog: document.getElementById("delete-dialog"),
  deleteName: document.getElementById("delete-dialog-name"),
  deleteError: document.getElementById("delete-dialog-error"),
  deleteCancel: document.getElementById("delete-cancel"),
  deleteConfirm: document.getElementById("delete-confirm"),
};

export var state = {
  conversations: [],
  currentId: null,
  currentTitle: "",
  // The settings of the conversation shown ({instructions, temperature, max_new_tokens}),
  // or of the one the next message starts; null: the site's defaults.
  settings: null,
  // Bumped on every change of the conversation shown, so late answers for an old view
  // are recognised and dropped.
  viewSeq: 0,
  // The chat.send waiting for chat.started or an error: {clientId, conversation, content,
  // viewSeq, node}. The composer is read-only meanwhile, so its text is never lost.
  pending: null,
  // Answers streaming on this socket, by assistant message id: {id, conversation, text,
  // model}. Kept whichever conversation is shown, so switching back shows the whole text.
  live: new Map(),
  liveByConversation: new Map(),
  stopping: false,
  // Whether the websocket is open now, and whether it ever was since the page loaded.
  connected: false,
  everConnected: false,
};

var reloading = false;

// Screen readers hear this once per call; clearing first makes a repeat audible too.
export function announce(text) {
  el.announcer.textContent = "";
  window.setTimeout(function () {
    el.announcer.textContent = text;
  }, 50);
}

export function sessionEnded() {
  if (!reloading) {
    reloading = true;
    window.location.reload();
  }
}
