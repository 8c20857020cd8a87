// The chat page: conversation list, messages, composer and the websocket stream.
// Model output is untrusted. It is turned into HTML by marked with raw HTML escaped, then
// sanitised by DOMPurify before it touches the page; user text is only ever textContent.
(function () {
  "use strict";

  var app = document.getElementById("chat-app");
  if (!app) {
    return;
  }

  // Markdown is re-rendered at most this often while an answer streams (milliseconds).
  var RENDER_INTERVAL_MS = 100;
  // The worker state is polled this often (milliseconds), and on every reconnect.
  var STATUS_POLL_MS = 10000;
  // A conversation loaded with an answer still being written elsewhere is re-read this often.
  var STREAMING_REFRESH_MS = 3000;
  // Reconnect waits double from the first to the last (seconds).
  var RECONNECT_FIRST_S = 1;
  var RECONNECT_MAX_S = 30;
  // The wait starts again from the first only once a connection has lasted this long, so a
  // server that accepts and drops at once is not asked again every second (milliseconds).
  var RECONNECT_STABLE_MS = 10000;
  // The character counter appears from this share of the limit onwards.
  var COUNTER_FROM = 0.8;
  // The user has scrolled away from the latest text when further than this from the end (px).
  var STICK_THRESHOLD_PX = 48;

  var UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  var HASH_RE = /^#c\/([0-9a-f-]{36})$/i;
  var SESSION_ENDED = 4401;
  // Long answers are announced up to this many characters; the rest is on the page.
  var ANNOUNCE_MAX_CHARS = 4000;
  var SITE_NAME = document.title.split(" \u00b7 ").slice(1).join(" \u00b7 ") || document.title;

  var config = {
    wsPath: app.dataset.wsPath || "/ws/chat/",
    maxChars: parseInt(app.dataset.maxChars, 10) || 0,
    apiUrl: app.dataset.apiUrl || "/chat/api/",
    exportUrl: app.dataset.exportUrl || "/chat/conversations/",
  };
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

  var el = {
    sidebar: document.getElementById("chat-sidebar"),
    sidebarToggle: document.getElementById("sidebar-toggle"),
    sidebarClose: document.getElementById("sidebar-close"),
    backdrop: document.getElementById("sidebar-backdrop"),
    newConversation: document.getElementById("new-conversation"),
    list: document.getElementById("conversation-list"),
    listStatus: document.getElementById("conversation-list-status"),
    title: document.getElementById("conversation-title"),
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

  var state = {
    conversations: [],
    currentId: null,
    currentTitle: "",
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
    socket: null,
    connected: false,
    everConnected: false,
    reconnectAttempts: 0,
    reconnectTimer: 0,
    stableTimer: 0,
    reconnectAt: 0,
    countdownTimer: 0,
    streamingRefreshTimer: 0,
    stickToBottom: true,
    openMenu: null,
    renaming: null,
    listDirty: false,
    deleteTarget: null,
    overLimit: false,
    reloading: false,
  };

  // --- Small helpers -------------------------------------------------------------------

  function isUuid(value) {
    return typeof value === "string" && UUID_RE.test(value);
  }

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  // The server counts characters as Python does (code points), not UTF-16 units.
  function charCount(text) {
    return text.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, "_").length;
  }

  var HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return HTML_ESCAPES[c];
    });
  }

  var numberFormat = new Intl.NumberFormat();
  var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var dayFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  var fullDateFormat = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", year: "numeric",
  });

  function shortDate(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) {
      return "";
    }
    var now = new Date();
    if (date.toDateString() === now.toDateString()) {
      return timeFormat.format(date);
    }
    if (date.getFullYear() === now.getFullYear()) {
      return dayFormat.format(date);
    }
    return fullDateFormat.format(date);
  }

  function svgIcon(pathData) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "icon");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", pathData);
    svg.appendChild(path);
    return svg;
  }
  var ICON_MORE = "M5 12h.01M12 12h.01M19 12h.01";
  var ICON_COPY = "M9 9h10v10H9zM5 15V5h10";

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  // Screen readers hear this once per call; clearing first makes a repeat audible too.
  function announce(text) {
    el.announcer.textContent = "";
    window.setTimeout(function () {
      el.announcer.textContent = text;
    }, 50);
  }

  function sessionEnded() {
    if (!state.reloading) {
      state.reloading = true;
      window.location.reload();
    }
  }

  // --- HTTP API ------------------------------------------------------------------------

  function ApiError(code, detail, status) {
    this.code = code;
    this.detail = detail;
    this.status = status || 0;
  }

  function api(path, body) {
    var init = {
      method: body === undefined ? "GET" : "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = csrfToken;
      init.body = JSON.stringify(body);
    }
    return window.fetch(config.apiUrl + path, init).catch(function () {
      throw new ApiError("network", "The server could not be reached. Check your connection and try again.");
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      var isJson = type.indexOf("application/json") === 0;
      // A session that ended answers with a redirect to the sign-in page (or a 401).
      if (response.status === 401 || (response.redirected && !isJson)) {
        sessionEnded();
        throw new ApiError("session_ended", "Your session has ended. Sign in again.", response.status);
      }
      var parsed = isJson ? response.json().catch(function () { return null; }) : Promise.resolve(null);
      return parsed.then(function (data) {
        if (!response.ok || data === null) {
          var error = data && data.error ? data.error : {};
          throw new ApiError(
            error.code || "http_" + response.status,
            error.detail || "Something went wrong on the server (HTTP " + response.status
              + "). Try again in a moment.",
            response.status
          );
        }
        return data;
      });
    });
  }

  function conversationPath(id) {
    return "conversations/" + encodeURIComponent(id);
  }

  // --- Markdown ------------------------------------------------------------------------

  var canRenderMarkdown = Boolean(window.marked && window.DOMPurify && window.DOMPurify.isSupported);
  var hljs = window.hljs || null;

  var ALLOWED_TAGS = [
    "a", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
    "code", "pre", "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th",
    "td", "span", "sup", "sub", "kbd",
  ];
  var PURIFY_CONFIG = {
    ALLOWED_TAGS: ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "title", "class", "align", "start"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ALLOWED_URI_REGEXP: /^(?:https?|mailto):/i,
    RETURN_DOM_FRAGMENT: true,
  };
  var SAFE_PROTOCOLS = ["http:", "https:", "mailto:"];
  // Only the classes our own renderer writes: highlight.js tokens and the code language.
  var SAFE_CLASS_RE = /^(?:hljs(?:-[\w-]+)?|language-[\w+#.-]+|[\w-]+_)$/;

  function safeHref(href) {
    try {
      var url = new URL(href, window.location.href);
      return SAFE_PROTOCOLS.indexOf(url.protocol) !== -1 ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  var markdown = null;
  if (canRenderMarkdown) {
    window.DOMPurify.addHook("uponSanitizeAttribute", function (node, data) {
      if (data.attrName === "class") {
        data.attrValue = data.attrValue.split(/\s+/).filter(function (name) {
          return SAFE_CLASS_RE.test(name);
        }).join(" ");
      }
    });
    window.DOMPurify.addHook("afterSanitizeAttributes", function (node) {
      if (node.nodeName === "A") {
        var href = node.hasAttribute("href") ? safeHref(node.getAttribute("href")) : null;
        if (href === null) {
          node.removeAttribute("href");
          return;
        }
        node.setAttribute("href", href);
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });

    markdown = new window.marked.Marked({ gfm: true, breaks: false, async: false });
    markdown.use({
      renderer: {
        // Raw HTML in model output is shown as the text it is, never parsed as HTML.
        html: function (token) {
          var text = escapeHtml(token.text);
          return token.block ? "<p>" + text + "</p>\n" : text;
        },
        // No image is ever loaded: it becomes a link the user may choose to open.
        image: function (token) {
          var label = "Image: " + (token.text || token.href);
          return '<a href="' + escapeHtml(token.href) + '">' + escapeHtml(label) + "</a>";
        },
        checkbox: function (token) {
          return token.checked ? "\u2611 " : "\u2610 ";
        },
        // Only blocks that name their language are highlighted: guessing is often wrong, and
        // too slow to repeat on every render of a streaming answer.
        code: function (token) {
          var language = (token.lang || "").trim().split(/\s+/)[0].toLowerCase();
          var text = token.text || "";
          var html = hljs && language && hljs.getLanguage(language)
            ? hljs.highlight(text, { language: language, ignoreIllegals: true }).value
            : escapeHtml(text);
          var className = "hljs" + (language ? " language-" + escapeHtml(language) : "");
          return '<pre><code class="' + className + '">' + html + "</code></pre>\n";
        },
      },
    });
  }

  function decorateCodeBlocks(root) {
    root.querySelectorAll("pre").forEach(function (pre) {
      var code = pre.querySelector("code");
      var match = code ? /(?:^|\s)language-([\w+#.-]+)/.exec(code.className) : null;
      var block = make("div", "code-block");
      var head = make("div", "code-block-head");
      head.appendChild(make("span", "code-language", match ? match[1] : "text"));
      var copy = make("button", "copy-button copy-code");
      copy.type = "button";
      copy.appendChild(svgIcon(ICON_COPY));
      copy.appendChild(make("span", "copy-label", "Copy"));
      copy.setAttribute("aria-label", "Copy code");
      head.appendChild(copy);
      pre.parentNode.insertBefore(block, pre);
      block.appendChild(head);
      block.appendChild(pre);
    });
  }

  function renderMarkdownInto(body, text) {
    if (!markdown) {
      body.classList.add("plain-text");
      body.textContent = text;
      return;
    }
    var fragment = window.DOMPurify.sanitize(markdown.parse(text), PURIFY_CONFIG);
    decorateCodeBlocks(fragment);
    body.replaceChildren(fragment);
  }

  // --- Messages ------------------------------------------------------------------------

  var messageSource = new WeakMap();

  var BADGES = {
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

  function findMessage(id) {
    return el.messages.querySelector('[data-message-id="' + CSS.escape(id) + '"]');
  }

  function userMessageNode(content) {
    var node = make("article", "message message-user");
    node.appendChild(make("h2", "visually-hidden", "You said:"));
    node.appendChild(make("div", "message-body", content));
    return node;
  }

  function assistantMessageNode(message) {
    var node = make("article", "message message-assistant");
    node.dataset.messageId = message.id;
    var meta = make("div", "message-meta");
    var author = make("h2", "message-author", "Assistant");
    meta.appendChild(author);
    if (message.model) {
      meta.appendChild(make("span", "message-model", message.model));
    }
    var copy = make("button", "copy-button copy-message");
    copy.type = "button";
    copy.appendChild(svgIcon(ICON_COPY));
    copy.appendChild(make("span", "copy-label", "Copy"));
    copy.setAttribute("aria-label", "Copy answer as Markdown");
    meta.appendChild(copy);
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
  function showAssistant(node, text, status) {
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

  function updateEmptyState() {
    el.emptyState.hidden = el.messages.childElementCount > 0 || el.messages.classList.contains("is-loading");
  }

  function scrollDistanceFromEnd() {
    return el.scroller.scrollHeight - el.scroller.scrollTop - el.scroller.clientHeight;
  }

  function scrollToEnd() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
    state.stickToBottom = true;
    el.jumpLatest.hidden = true;
  }

  // After content changed: follow it only while the user has not scrolled away.
  function contentChanged() {
    if (state.stickToBottom) {
      scrollToEnd();
    } else {
      el.jumpLatest.hidden = scrollDistanceFromEnd() < STICK_THRESHOLD_PX;
    }
  }

  function renderConversation(data) {
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
    if (needsRefresh) {
      var seq = state.viewSeq;
      state.streamingRefreshTimer = window.setTimeout(function () {
        if (seq === state.viewSeq) {
          reloadCurrent();
        }
      }, STREAMING_REFRESH_MS);
    }
  }

  // --- Throttled rendering of streaming answers ----------------------------------------

  var dirty = new Set();
  var renderTimer = 0;
  var lastRender = 0;

  function scheduleRender(id) {
    dirty.add(id);
    if (renderTimer) {
      return;
    }
    var wait = Math.max(0, RENDER_INTERVAL_MS - (performance.now() - lastRender));
    renderTimer = window.setTimeout(function () {
      window.requestAnimationFrame(flushRenders);
    }, wait);
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

  // --- Which conversation is shown -----------------------------------------------------

  function setTitle(title) {
    state.currentTitle = title;
    el.title.textContent = title || "New conversation";
    document.title = (title || "New conversation") + " \u00b7 " + SITE_NAME;
  }

  function openConversation(id) {
    state.viewSeq += 1;
    window.clearTimeout(state.streamingRefreshTimer);
    state.currentId = id;
    state.stopping = false;
    el.messages.replaceChildren();
    markCurrentInList();
    updateComposer();
    if (id === null) {
      setTitle("");
      el.messages.classList.remove("is-loading");
      updateEmptyState();
      return Promise.resolve();
    }
    var known = state.conversations.find(function (c) { return c.id === id; });
    setTitle(known ? known.title : "");
    el.messages.classList.add("is-loading");
    el.scroller.setAttribute("aria-busy", "true");
    updateEmptyState();
    return loadConversation(id, state.viewSeq);
  }

  function loadConversation(id, seq) {
    return api(conversationPath(id)).then(function (data) {
      if (seq !== state.viewSeq) {
        return;
      }
      el.messages.classList.remove("is-loading");
      el.scroller.removeAttribute("aria-busy");
      setTitle(String(data.title || ""));
      renderConversation({ id: id, messages: data.messages });
    }).catch(function (error) {
      if (seq !== state.viewSeq) {
        return;
      }
      el.messages.classList.remove("is-loading");
      el.scroller.removeAttribute("aria-busy");
      if (error.status === 404) {
        showComposerError("That conversation no longer exists. It may have been deleted in another window.");
        refreshConversations();
        startNewConversation(false);
        return;
      }
      showComposerError(error.detail);
      updateEmptyState();
    });
  }

  function reloadCurrent() {
    if (state.currentId !== null) {
      window.clearTimeout(state.streamingRefreshTimer);
      loadConversation(state.currentId, state.viewSeq);
    }
  }

  function conversationFromHash() {
    var match = HASH_RE.exec(window.location.hash);
    return match && isUuid(match[1]) ? match[1].toLowerCase() : null;
  }

  function startNewConversation(focusInput) {
    if (window.location.hash) {
      window.history.pushState(null, "", window.location.pathname + window.location.search);
    }
    openConversation(null);
    closeSidebar(false);
    if (focusInput) {
      el.input.focus();
    }
  }

  // --- Conversation list ---------------------------------------------------------------

  function refreshConversations() {
    return api("conversations").then(function (data) {
      state.conversations = (data.conversations || []).filter(function (c) {
        return isUuid(c.id);
      }).map(function (c) {
        return { id: c.id.toLowerCase(), title: String(c.title || ""), updated_at: c.updated_at };
      });
      el.listStatus.hidden = state.conversations.length > 0;
      el.listStatus.textContent = "No conversations yet. What you ask appears here.";
      var current = state.conversations.find(function (c) { return c.id === state.currentId; });
      if (current && current.title !== state.currentTitle) {
        setTitle(current.title);
      }
      renderList();
    }).catch(function (error) {
      el.listStatus.hidden = false;
      el.listStatus.textContent = error.detail;
    });
  }

  function renderList() {
    // Rebuilding would throw away a half-typed title or an open menu; do it afterwards.
    if (state.renaming || state.openMenu) {
      state.listDirty = true;
      return;
    }
    state.listDirty = false;
    var items = state.conversations.map(listItem);
    el.list.replaceChildren.apply(el.list, items);
    markCurrentInList();
  }

  function displayTitle(title) {
    return title || "Untitled conversation";
  }

  function listItem(conversation) {
    var li = make("li", "conversation-item");
    li.dataset.id = conversation.id;

    var link = make("a", "conversation-link");
    link.href = "#c/" + conversation.id;
    link.appendChild(make("span", "conversation-name", displayTitle(conversation.title)));
    var time = make("time", "conversation-date", shortDate(conversation.updated_at));
    time.dateTime = conversation.updated_at || "";
    link.appendChild(time);
    li.appendChild(link);

    var menuId = "conversation-menu-" + conversation.id;
    var more = make("button", "icon-button conversation-more");
    more.type = "button";
    more.setAttribute("aria-label", "Actions for \u201c" + displayTitle(conversation.title) + "\u201d");
    more.setAttribute("aria-expanded", "false");
    more.setAttribute("aria-controls", menuId);
    more.appendChild(svgIcon(ICON_MORE));
    li.appendChild(more);

    var menu = make("div", "conversation-menu");
    menu.id = menuId;
    menu.hidden = true;
    var rename = make("button", "menu-item", "Rename");
    rename.type = "button";
    rename.dataset.action = "rename";
    menu.appendChild(rename);
    var base = config.exportUrl + encodeURIComponent(conversation.id) + "/";
    var exportMd = make("a", "menu-item", "Export as Markdown");
    exportMd.href = base + "export.md";
    exportMd.setAttribute("download", "");
    menu.appendChild(exportMd);
    var exportJson = make("a", "menu-item", "Export as JSON");
    exportJson.href = base + "export.json";
    exportJson.setAttribute("download", "");
    menu.appendChild(exportJson);
    var remove = make("button", "menu-item danger", "Delete\u2026");
    remove.type = "button";
    remove.dataset.action = "delete";
    menu.appendChild(remove);
    li.appendChild(menu);
    return li;
  }

  function markCurrentInList() {
    el.list.querySelectorAll(".conversation-item").forEach(function (li) {
      var current = li.dataset.id === state.currentId;
      li.classList.toggle("is-current", current);
      var link = li.querySelector(".conversation-link");
      if (link) {
        if (current) {
          link.setAttribute("aria-current", "page");
        } else {
          link.removeAttribute("aria-current");
        }
      }
    });
  }

  function conversationById(id) {
    return state.conversations.find(function (c) { return c.id === id; });
  }

  function openMenu(li) {
    closeMenu(false);
    var button = li.querySelector(".conversation-more");
    var menu = li.querySelector(".conversation-menu");
    button.setAttribute("aria-expanded", "true");
    menu.hidden = false;
    li.classList.add("menu-open");
    state.openMenu = li;
    menu.querySelector(".menu-item").focus();
  }

  function closeMenu(returnFocus) {
    var li = state.openMenu;
    if (!li) {
      return;
    }
    state.openMenu = null;
    li.classList.remove("menu-open");
    li.querySelector(".conversation-menu").hidden = true;
    var button = li.querySelector(".conversation-more");
    button.setAttribute("aria-expanded", "false");
    if (returnFocus) {
      button.focus();
    }
    if (state.listDirty && !state.renaming) {
      renderList();
    }
  }

  function itemById(id) {
    return el.list.querySelector('.conversation-item[data-id="' + CSS.escape(id) + '"]');
  }

  function startRename(li) {
    var conversation = conversationById(li.dataset.id);
    if (!conversation) {
      return;
    }
    // Closing the menu may rebuild a list that changed meanwhile: find the item again.
    closeMenu(false);
    li = itemById(conversation.id);
    if (!li) {
      return;
    }
    var link = li.querySelector(".conversation-link");
    var form = make("form", "rename-form");
    form.noValidate = true;
    var inputId = "rename-" + conversation.id;
    var label = make("label", "visually-hidden", "New title");
    label.htmlFor = inputId;
    var input = make("input", "rename-input");
    input.id = inputId;
    input.type = "text";
    input.value = conversation.title;
    input.autocomplete = "off";
    var hint = make("p", "rename-hint", "Enter saves, Escape cancels.");
    hint.id = inputId + "-hint";
    input.setAttribute("aria-describedby", hint.id);
    var error = make("p", "error rename-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    form.appendChild(label);
    form.appendChild(input);
    form.appendChild(hint);
    form.appendChild(error);
    link.hidden = true;
    li.querySelector(".conversation-more").hidden = true;
    li.insertBefore(form, link);
    state.renaming = { li: li, form: form, input: input, error: error, id: conversation.id, saving: false };
    input.focus();
    input.select();

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      saveRename();
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        endRename(true);
      }
    });
    input.addEventListener("blur", function () {
      // Leaving the field keeps what was typed, as pressing Enter would.
      if (state.renaming && state.renaming.input === input && !state.renaming.saving) {
        saveRename(true);
      }
    });
  }

  function saveRename(fromBlur) {
    var renaming = state.renaming;
    if (!renaming || renaming.saving) {
      return;
    }
    var title = renaming.input.value.trim();
    var conversation = conversationById(renaming.id);
    if (!conversation || title === conversation.title) {
      endRename(!fromBlur);
      return;
    }
    if (!title) {
      if (fromBlur) {
        endRename(false);
        return;
      }
      renaming.error.textContent = "Type a title, or press Escape to keep the old one.";
      renaming.error.hidden = false;
      return;
    }
    renaming.saving = true;
    renaming.input.readOnly = true;
    api(conversationPath(renaming.id) + "/rename", { title: title }).then(function (data) {
      conversation.title = String(data.title || title);
      if (conversation.id === state.currentId) {
        setTitle(conversation.title);
      }
      announce("Conversation renamed to " + conversation.title + ".");
      endRename(!fromBlur);
    }).catch(function (error) {
      renaming.saving = false;
      renaming.input.readOnly = false;
      renaming.error.textContent = error.detail;
      renaming.error.hidden = false;
      if (fromBlur) {
        renaming.input.focus();
      }
    });
  }

  function endRename(returnFocus) {
    var renaming = state.renaming;
    if (!renaming) {
      return;
    }
    state.renaming = null;
    renaming.form.remove();
    var link = renaming.li.querySelector(".conversation-link");
    link.hidden = false;
    renaming.li.querySelector(".conversation-more").hidden = false;
    var conversation = conversationById(renaming.id);
    if (conversation) {
      link.querySelector(".conversation-name").textContent = displayTitle(conversation.title);
      renaming.li.querySelector(".conversation-more").setAttribute(
        "aria-label", "Actions for \u201c" + displayTitle(conversation.title) + "\u201d"
      );
    }
    var id = renaming.id;
    if (state.listDirty) {
      renderList();
    }
    if (returnFocus) {
      var li = itemById(id);
      if (li) {
        li.querySelector(".conversation-link").focus();
      }
    }
  }

  function askDelete(li) {
    var conversation = conversationById(li.dataset.id);
    if (!conversation) {
      return;
    }
    closeMenu(false);
    li = itemById(conversation.id);
    state.deleteTarget = {
      id: conversation.id,
      returnFocus: li ? li.querySelector(".conversation-more") : null,
    };
    el.deleteName.textContent = displayTitle(conversation.title);
    el.deleteError.hidden = true;
    el.deleteConfirm.disabled = false;
    el.deleteDialog.showModal();
    el.deleteCancel.focus();
  }

  function confirmDelete() {
    var target = state.deleteTarget;
    if (!target) {
      return;
    }
    el.deleteConfirm.disabled = true;
    api(conversationPath(target.id) + "/delete", {}).then(function () {
      state.deleteTarget = null;
      el.deleteDialog.close();
      state.conversations = state.conversations.filter(function (c) { return c.id !== target.id; });
      renderList();
      el.listStatus.hidden = state.conversations.length > 0;
      announce("Conversation deleted.");
      if (target.id === state.currentId) {
        startNewConversation(false);
      }
      el.newConversation.focus();
    }).catch(function (error) {
      el.deleteConfirm.disabled = false;
      el.deleteError.textContent = error.detail;
      el.deleteError.hidden = false;
    });
  }

  // --- Sidebar on narrow screens -------------------------------------------------------

  var narrow = window.matchMedia("(max-width: 50rem)");

  function openSidebar() {
    app.classList.add("sidebar-open");
    el.sidebarToggle.setAttribute("aria-expanded", "true");
    el.backdrop.hidden = false;
    var current = el.list.querySelector(".is-current .conversation-link");
    (current || el.newConversation).focus();
  }

  function closeSidebar(returnFocus) {
    if (!app.classList.contains("sidebar-open")) {
      return;
    }
    app.classList.remove("sidebar-open");
    el.sidebarToggle.setAttribute("aria-expanded", "false");
    el.backdrop.hidden = true;
    if (returnFocus) {
      el.sidebarToggle.focus();
    }
  }

  // --- Composer ------------------------------------------------------------------------

  var growsByItself = window.CSS && CSS.supports && CSS.supports("field-sizing", "content");

  function resizeInput() {
    if (growsByItself) {
      return;
    }
    el.input.style.height = "auto";
    el.input.style.height = el.input.scrollHeight + 2 + "px";
  }

  function currentGeneration() {
    return state.currentId !== null && state.liveByConversation.has(state.currentId);
  }

  function updateComposer() {
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
    if (over && !state.overLimit) {
      announce("Your message is longer than " + numberFormat.format(limit)
        + " characters. Shorten it to send.");
    }
    state.overLimit = over;

    var streaming = currentGeneration();
    el.stop.hidden = !streaming;
    el.send.hidden = streaming;
    el.stop.disabled = state.stopping;
    el.stop.querySelector("span").textContent = state.stopping ? "Stopping\u2026" : "Stop";
    el.send.disabled = !text.trim() || over || state.pending !== null || !state.connected;
    el.input.readOnly = state.pending !== null;
    el.composer.classList.toggle("is-pending", state.pending !== null);
  }

  function showComposerError(detail) {
    el.error.textContent = detail;
    el.error.hidden = false;
  }

  function clearComposerError() {
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
    if (!state.connected) {
      showComposerError("Not connected to the server yet. Your message is kept here; "
        + "send it once the connection is back.");
      return;
    }
    clearComposerError();
    var clientId = newClientId();
    var node = userMessageNode(content);
    node.classList.add("is-pending");
    el.messages.appendChild(node);
    updateEmptyState();
    scrollToEnd();
    state.pending = {
      clientId: clientId,
      conversation: state.currentId,
      content: content,
      viewSeq: state.viewSeq,
      node: node,
    };
    state.socket.send(JSON.stringify({
      type: "chat.send",
      conversation: state.currentId,
      content: content,
      client_id: clientId,
    }));
    updateComposer();
  }

  // The send failed before the answer started: the text stays in the composer.
  function abandonPending(detail) {
    var pending = state.pending;
    state.pending = null;
    if (pending.node && pending.node.parentNode) {
      pending.node.remove();
    }
    updateEmptyState();
    showComposerError(detail);
    updateComposer();
    el.input.focus();
  }

  function stopGeneration() {
    var id = state.currentId;
    if (!id || !state.liveByConversation.has(id) || !state.connected) {
      return;
    }
    state.stopping = true;
    state.socket.send(JSON.stringify({ type: "chat.stop", conversation: id }));
    updateComposer();
  }

  // --- Websocket -----------------------------------------------------------------------

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + config.wsPath;
  }

  function connect() {
    window.clearTimeout(state.reconnectTimer);
    window.clearInterval(state.countdownTimer);
    state.reconnectTimer = 0;
    if (state.everConnected) {
      showBanner("Reconnecting\u2026", false);
    }
    var socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.socket = socket;
    socket.addEventListener("open", function () {
      if (state.socket !== socket) {
        return;
      }
      var reconnected = state.everConnected;
      state.connected = true;
      state.everConnected = true;
      state.stableTimer = window.setTimeout(function () {
        state.reconnectAttempts = 0;
      }, RECONNECT_STABLE_MS);
      el.banner.hidden = true;
      updateComposer();
      if (reconnected) {
        announce("Connection restored.");
        refreshStatus();
        refreshConversations();
        reloadCurrent();
      }
    });
    socket.addEventListener("message", function (event) {
      if (state.socket === socket && typeof event.data === "string") {
        handleFrame(event.data);
      }
    });
    socket.addEventListener("close", function (event) {
      if (state.socket !== socket) {
        return;
      }
      state.socket = null;
      state.connected = false;
      window.clearTimeout(state.stableTimer);
      if (event.code === SESSION_ENDED) {
        sessionEnded();
        return;
      }
      connectionLost();
      scheduleReconnect();
    });
  }

  function connectionLost() {
    // The banner's countdown changes every second, so it is not a live region: say it once.
    announce("Connection to the server lost. The page reconnects by itself.");
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

  function scheduleReconnect() {
    var delay = Math.min(RECONNECT_MAX_S, RECONNECT_FIRST_S * Math.pow(2, state.reconnectAttempts));
    state.reconnectAttempts += 1;
    state.reconnectAt = Date.now() + delay * 1000;
    state.reconnectTimer = window.setTimeout(connect, delay * 1000);
    // A session that ended may refuse the socket before it opens (no 4401 then); the API
    // notices it, and reloads the page to reach the sign-in page.
    refreshStatus();
    updateCountdown();
    window.clearInterval(state.countdownTimer);
    state.countdownTimer = window.setInterval(updateCountdown, 1000);
  }

  function updateCountdown() {
    var seconds = Math.max(0, Math.ceil((state.reconnectAt - Date.now()) / 1000));
    var what = state.everConnected ? "Connection to the server lost." : "Could not connect to the server.";
    showBanner(what + " Trying again in " + seconds + "\u00a0s.", true);
  }

  function showBanner(text, offerRetry) {
    if (el.bannerText.textContent !== text) {
      el.bannerText.textContent = text;
    }
    el.reconnectNow.hidden = !offerRetry;
    el.banner.hidden = false;
  }

  function handleFrame(raw) {
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
    if (ours) {
      state.pending = null;
      if (el.input.value === pending.content) {
        el.input.value = "";
        resizeInput();
      }
      pending.node.classList.remove("is-pending");
      if (pending.viewSeq === state.viewSeq && state.currentId === null) {
        state.currentId = conversationId;
        window.history.replaceState(null, "", "#c/" + conversationId);
      }
    }
    if (state.currentId === conversationId && !findMessage(messageId)) {
      var node = assistantMessageNode(live);
      el.messages.appendChild(node);
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
    dirty.delete(id);
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
      contentChanged();
      var spoken = node.querySelector(".message-body").textContent.trim();
      if (spoken.length > ANNOUNCE_MAX_CHARS) {
        spoken = spoken.slice(0, ANNOUNCE_MAX_CHARS) + "\u2026";
      }
      var ending = BADGES[status] ? " " + BADGES[status].note : "";
      announce("Assistant: " + spoken + ending);
    }
    updateComposer();
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

  // --- Worker state --------------------------------------------------------------------

  function setWorkerState(stateName, text) {
    el.workerStatus.dataset.state = stateName;
    if (el.workerStatusText.textContent !== text) {
      el.workerStatusText.textContent = text;
    }
    el.workerNotice.hidden = stateName !== "no_worker";
  }

  function refreshStatus() {
    return api("status").then(function (data) {
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

  // --- Events --------------------------------------------------------------------------

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

  el.newConversation.addEventListener("click", function () {
    startNewConversation(true);
  });

  window.addEventListener("hashchange", function () {
    var id = conversationFromHash();
    if (id !== state.currentId) {
      openConversation(id);
    }
    if (app.classList.contains("sidebar-open")) {
      closeSidebar(false);
      el.input.focus();
    }
  });

  el.list.addEventListener("click", function (event) {
    var li = event.target.closest(".conversation-item");
    if (!li) {
      return;
    }
    if (event.target.closest(".conversation-more")) {
      if (state.openMenu === li) {
        closeMenu(true);
      } else {
        openMenu(li);
      }
      return;
    }
    var action = event.target.closest("[data-action]");
    if (action && action.dataset.action === "rename") {
      startRename(li);
    } else if (action && action.dataset.action === "delete") {
      askDelete(li);
    } else if (event.target.closest(".conversation-link") && li.dataset.id === state.currentId) {
      closeSidebar(false);
      el.input.focus();
    } else if (event.target.closest(".menu-item")) {
      closeMenu(false);
    }
  });

  el.list.addEventListener("keydown", function (event) {
    if (!state.openMenu || !state.openMenu.contains(event.target)) {
      return;
    }
    var items = Array.prototype.slice.call(state.openMenu.querySelectorAll(".menu-item"));
    var index = items.indexOf(event.target);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenu(true);
    } else if (index !== -1 && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : -1;
      items[(index + step + items.length) % items.length].focus();
    }
  });

  document.addEventListener("click", function (event) {
    if (state.openMenu && !state.openMenu.contains(event.target)) {
      closeMenu(false);
    }
  });

  document.addEventListener("focusin", function (event) {
    if (state.openMenu && !state.openMenu.contains(event.target)) {
      closeMenu(false);
    }
  });

  el.deleteCancel.addEventListener("click", function () {
    el.deleteDialog.close();
  });
  el.deleteConfirm.addEventListener("click", confirmDelete);
  el.deleteDialog.addEventListener("close", function () {
    var target = state.deleteTarget;
    state.deleteTarget = null;
    if (target && target.returnFocus && target.returnFocus.isConnected) {
      target.returnFocus.focus();
    }
  });

  el.sidebarToggle.addEventListener("click", openSidebar);
  el.sidebarClose.addEventListener("click", function () {
    closeSidebar(true);
  });
  el.backdrop.addEventListener("click", function () {
    closeSidebar(true);
  });
  el.sidebar.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && app.classList.contains("sidebar-open") && !event.defaultPrevented) {
      closeSidebar(true);
    }
  });
  narrow.addEventListener("change", function () {
    if (!narrow.matches) {
      closeSidebar(false);
    }
  });

  el.reconnectNow.addEventListener("click", function () {
    state.reconnectAttempts = 0;
    connect();
  });
  window.addEventListener("online", function () {
    if (!state.socket && state.everConnected) {
      connect();
    }
  });

  el.scroller.addEventListener("scroll", function () {
    state.stickToBottom = scrollDistanceFromEnd() < STICK_THRESHOLD_PX;
    if (state.stickToBottom) {
      el.jumpLatest.hidden = true;
    }
  }, { passive: true });
  // Any move upwards by the user lets go of the end at once, before a render can pull back.
  el.scroller.addEventListener("wheel", function (event) {
    if (event.deltaY < 0) {
      state.stickToBottom = false;
    }
  }, { passive: true });
  el.scroller.addEventListener("keydown", function (event) {
    if (["ArrowUp", "PageUp", "Home"].indexOf(event.key) !== -1) {
      state.stickToBottom = false;
    }
  });
  el.scroller.addEventListener("touchstart", function () {
    state.stickToBottom = false;
  }, { passive: true });
  el.jumpLatest.addEventListener("click", function () {
    scrollToEnd();
    el.input.focus();
  });

  el.messages.addEventListener("click", function (event) {
    var button = event.target.closest(".copy-button");
    if (!button) {
      return;
    }
    var text;
    if (button.classList.contains("copy-code")) {
      text = button.closest(".code-block").querySelector("code").textContent;
    } else {
      text = messageSource.get(button.closest(".message")) || "";
    }
    copyText(text, button);
  });

  function copyText(text, button) {
    var label = button.querySelector(".copy-label");
    function say(word) {
      label.textContent = word;
      window.setTimeout(function () {
        label.textContent = "Copy";
      }, 2000);
    }
    if (!navigator.clipboard) {
      say("Copy failed");
      showComposerError("This browser does not allow copying from the page. "
        + "Select the text and press Ctrl+C instead.");
      return;
    }
    navigator.clipboard.writeText(text).then(function () {
      say("Copied");
      announce("Copied to the clipboard.");
    }, function () {
      say("Copy failed");
      showComposerError("The browser refused to copy. Select the text and press Ctrl+C instead.");
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refreshStatus();
    }
  });

  // --- Start ---------------------------------------------------------------------------

  window.setInterval(function () {
    if (!document.hidden) {
      refreshStatus();
    }
  }, STATUS_POLL_MS);

  resizeInput();
  updateComposer();
  refreshStatus();
  refreshConversations();
  openConversation(conversationFromHash());
  connect();
})();
