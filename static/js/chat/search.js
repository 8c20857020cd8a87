// Search over the user's own conversations from the sidebar: the words go to the server in
// a POST body (never in the address), results show where each word matched, and a result
// opens its conversation at the message (showing the version that holds it) with the
// matches highlighted.

import { api, conversationPath } from "./api.js";
import { announce, el, state } from "./page.js";
import { findMessage, renderConversation } from "./messages.js";
import { updateComposer } from "./composer.js";
import { apiBadge, apiTokenOf } from "./origin.js";
import { make, numberFormat } from "./util.js";

// Searching starts this long after the last key press (milliseconds).
var TYPING_PAUSE_MS = 250;
var MIN_CHARS = 2;

var ui = {};
var timer = 0;
var sequence = 0;
// The words of the last search, for highlighting the message a result opens.
var lastWords = [];

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function wordsOf(text) {
  return (text.normalize("NFKC").toLowerCase().match(/[\p{L}\p{N}_]+/gu) || []);
}

function wordPattern(words) {
  if (!words.length) {
    return null;
  }
  var sorted = words.slice().sort(function (a, b) { return b.length - a.length; });
  return new RegExp("(?<![\\p{L}\\p{N}_])(?:" + sorted.map(escapeRegExp).join("|") + ")", "giu");
}

export function searchActive() {
  return Boolean(ui.input && ui.input.value.trim());
}

function showResults(active) {
  el.sidebar.classList.toggle("is-searching", active);
  ui.results.hidden = !active;
  el.listScroller.hidden = active;
  ui.status.hidden = !active;
  if (active) {
    el.listStatus.hidden = true;
  } else {
    el.listStatus.hidden = state.conversations.length > 0;
  }
}

function snippetNode(snippet) {
  var node = make("span", "search-snippet");
  var text = String(snippet.text || "");
  var matches = Array.isArray(snippet.matches) ? snippet.matches : [];
  var at = 0;
  if (snippet.before) {
    node.appendChild(document.createTextNode("\u2026"));
  }
  matches.forEach(function (range) {
    var start = Number(range[0]);
    var end = Number(range[1]);
    if (!(start >= at && end > start && end <= text.length)) {
      return;
    }
    node.appendChild(document.createTextNode(text.slice(at, start)));
    node.appendChild(make("mark", "", text.slice(start, end)));
    at = end;
  });
  node.appendChild(document.createTextNode(text.slice(at)));
  if (snippet.after) {
    node.appendChild(document.createTextNode("\u2026"));
  }
  return node;
}

function resultItem(result) {
  var li = make("li", "search-result");
  var link = make("a", "search-link");
  link.href = "#c/" + result.conversation + (result.message ? "/m/" + result.message : "");
  var title = make("span", "search-title", String(result.title || "Untitled conversation"));
  var token = apiTokenOf(result);
  if (token) {
    title.appendChild(document.createTextNode(" "));
    title.appendChild(apiBadge(token));
  }
  link.appendChild(title);
  var where = result.message ? (result.role === "user" ? "You: " : "Assistant: ") : "Title: ";
  var line = make("span", "search-where");
  line.appendChild(make("span", "search-role", where));
  line.appendChild(snippetNode(result.snippet || {}));
  link.appendChild(line);
  li.appendChild(link);
  return li;
}

function runSearch() {
  var text = ui.input.value.trim();
  if (!text) {
    showResults(false);
    return;
  }
  showResults(true);
  if (text.length < MIN_CHARS) {
    ui.results.replaceChildren();
    ui.status.textContent = "Type at least " + MIN_CHARS + " characters to search.";
    return;
  }
  var mine = ++sequence;
  ui.status.textContent = "Searching\u2026";
  api("search", { q: text }).then(function (data) {
    if (mine !== sequence) {
      return;
    }
    lastWords = wordsOf(text);
    var results = (data.results || []).filter(function (r) { return typeof r.conversation === "string"; });
    ui.results.replaceChildren.apply(ui.results, results.map(resultItem));
    var count = results.length;
    ui.status.textContent = count === 0
      ? "Nothing found. Search looks for words that begin with what you type."
      : (data.truncated ? "The first " : "") + numberFormat.format(count)
        + (count === 1 ? " result" : " results") + (data.truncated ? "; add a word to narrow it down." : ".");
  }).catch(function (error) {
    if (mine === sequence) {
      ui.status.textContent = error.detail;
    }
  });
}

function clearSearch() {
  ui.input.value = "";
  sequence += 1;
  ui.results.replaceChildren();
  showResults(false);
}

// Marks the words of the last search inside a message, and returns how many it marked.
function highlight(node) {
  var pattern = wordPattern(lastWords);
  var body = node.querySelector(".message-body");
  if (!pattern || !body) {
    return 0;
  }
  var walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
  var texts = [];
  while (walker.nextNode()) {
    texts.push(walker.currentNode);
  }
  var marked = 0;
  texts.forEach(function (textNode) {
    var value = textNode.nodeValue;
    pattern.lastIndex = 0;
    var match = pattern.exec(value);
    if (!match) {
      return;
    }
    var fragment = document.createDocumentFragment();
    var at = 0;
    while (match) {
      fragment.appendChild(document.createTextNode(value.slice(at, match.index)));
      fragment.appendChild(make("mark", "search-mark", match[0]));
      marked += 1;
      at = match.index + match[0].length;
      match = pattern.exec(value);
    }
    fragment.appendChild(document.createTextNode(value.slice(at)));
    textNode.parentNode.replaceChild(fragment, textNode);
  });
  return marked;
}

function focusMessage(node) {
  el.messages.querySelectorAll(".is-found").forEach(function (other) {
    other.classList.remove("is-found");
  });
  node.classList.add("is-found");
  highlight(node);
  node.tabIndex = -1;
  node.scrollIntoView({ block: "center" });
  node.focus({ preventScroll: true });
  announce("Showing the message you searched for.");
}

// Shows the message ``id`` of the conversation shown; an earlier version is brought up first.
export function revealMessage(id) {
  var node = findMessage(id);
  if (node) {
    focusMessage(node);
    return;
  }
  var conversation = state.currentId;
  var seq = state.viewSeq;
  api(conversationPath(conversation) + "/version", { message: id }).then(function (data) {
    if (seq !== state.viewSeq) {
      return;
    }
    renderConversation({ id: conversation, messages: data.messages }, true);
    updateComposer();
    var shown = findMessage(id);
    if (shown) {
      focusMessage(shown);
    }
  }).catch(function () {
    announce("That message is no longer in the conversation.");
  });
}

export function initSearch() {
  ui = {
    form: document.getElementById("search-form"),
    input: document.getElementById("search-input"),
    results: document.getElementById("search-results"),
    status: document.getElementById("search-status"),
  };
  ui.form.addEventListener("submit", function (event) {
    event.preventDefault();
    window.clearTimeout(timer);
    runSearch();
  });
  ui.input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(runSearch, TYPING_PAUSE_MS);
  });
  // A result already in the address opens again (the address does not change then).
  ui.results.addEventListener("click", function (event) {
    var link = event.target.closest(".search-link");
    if (link && link.getAttribute("href") === window.location.hash) {
      event.preventDefault();
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    }
  });
  ui.input.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && ui.input.value) {
      event.preventDefault();
      event.stopPropagation();
      clearSearch();
    }
  });
}
