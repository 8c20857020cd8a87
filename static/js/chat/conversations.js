// The conversations: the sidebar list (paged as it scrolls; pinned first; the archived ones
// apart; an "API" badge on those an API call started; load, rename, pin, archive, delete,
// download as Markdown or JSON, and each item's menu) and which conversation is shown (opened from the list or the
// address's #c/<id>, loaded from the API, re-read while an answer to it is still being
// written elsewhere).

import { api, conversationPath } from "./api.js";
import { announce, config, el, SITE_NAME, state } from "./page.js";
import { renderConversation, updateEmptyState } from "./messages.js";
import { showComposerError, updateComposer } from "./composer.js";
import { setConversationModel } from "./models.js";
import { closeSidebar, sidebarIsOpen } from "./sidebar.js";
import { showSettingsOf } from "./settings.js";
import { revealMessage } from "./search.js";
import { apiBadge, apiTokenOf, originSentence } from "./origin.js";
import { ICON_MORE, ICON_PIN, isUuid, make, shortDate, svgIcon } from "./util.js";

// The server's page of the list (chat.services.PAGE_SIZE): more are asked for as it scrolls.
var PAGE_SIZE = 50;

// A conversation loaded with an answer still being written elsewhere is re-read this often.
var STREAMING_REFRESH_MS = 3000;
// #c/<conversation>, or #c/<conversation>/m/<message> for a message (a search result).
var HASH_RE = /^#c\/([0-9a-f-]{36})(?:\/m\/([0-9a-f-]{36}))?$/i;

var streamingRefreshTimer = 0;
// The item whose menu is open, the rename in progress, whether the list changed while
// either was open, and the conversation the delete dialog asks about.
var list = { openMenu: null, renaming: null, dirty: false, deleteTarget: null };
// Which list is shown (the archived one or not), where its next page starts (null: at the
// end), and whether a page is being loaded.
var paging = { archived: false, next: null, loading: false, generation: 0 };

// --- Which conversation is shown -----------------------------------------------------

function setTitle(title) {
  state.currentTitle = title;
  el.title.textContent = title || "New conversation";
  document.title = (title || "New conversation") + " \u00b7 " + SITE_NAME;
}

export function openConversation(id) {
  state.viewSeq += 1;
  window.clearTimeout(streamingRefreshTimer);
  state.currentId = id;
  state.stopping = false;
  el.messages.replaceChildren();
  markCurrentInList();
  updateComposer();
  showSettingsOf(null);
  if (id === null) {
    setConversationModel(null);
    showOrigin(null);
    setTitle("");
    el.messages.classList.remove("is-loading");
    updateEmptyState();
    return Promise.resolve();
  }
  var known = state.conversations.find(function (c) { return c.id === id; });
  setTitle(known ? known.title : "");
  showOrigin(null);
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
    showOrigin(data);
    showSettingsOf(data.settings);
    setConversationModel(data.model);
    if (renderConversation({ id: id, messages: data.messages })) {
      streamingRefreshTimer = window.setTimeout(function () {
        if (seq === state.viewSeq) {
          reloadCurrent();
        }
      }, STREAMING_REFRESH_MS);
    }
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

export function reloadCurrent() {
  if (state.currentId !== null) {
    window.clearTimeout(streamingRefreshTimer);
    loadConversation(state.currentId, state.viewSeq);
  }
}

export function conversationFromHash() {
  var match = HASH_RE.exec(window.location.hash);
  return match && isUuid(match[1]) ? match[1].toLowerCase() : null;
}

export function messageFromHash() {
  var match = HASH_RE.exec(window.location.hash);
  return match && isUuid(match[2] || "") ? match[2].toLowerCase() : null;
}

// Opens the conversation in the address (``always``: even the one shown), at its message
// when the address names one.
export function openFromHash(always) {
  var id = conversationFromHash();
  var message = messageFromHash();
  var opened = always || id !== state.currentId ? openConversation(id) : Promise.resolve();
  return opened.then(function () {
    if (message && id === state.currentId) {
      revealMessage(message);
    }
  });
}

export function startNewConversation(focusInput) {
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

function normalised(c) {
  return {
    id: c.id.toLowerCase(),
    title: String(c.title || ""),
    updated_at: c.updated_at,
    pinned: c.pinned === true,
    archived: c.archived === true,
    apiToken: apiTokenOf(c),
  };
}

function showOrigin(data) {
  var token = apiTokenOf(data || {});
  el.origin.hidden = token === null;
  el.origin.textContent = token === null ? "" : originSentence(token) + ".";
}

function listPath(after, limit) {
  var params = [];
  if (paging.archived) {
    params.push("archived=1");
  }
  if (after) {
    params.push("after=" + encodeURIComponent(after));
  }
  if (limit && limit !== PAGE_SIZE) {
    params.push("limit=" + limit);
  }
  return "conversations" + (params.length ? "?" + params.join("&") : "");
}

function showListStatus() {
  el.listStatus.hidden = state.conversations.length > 0;
  el.listStatus.textContent = paging.archived
    ? "No archived conversations."
    : "No conversations yet. What you ask appears here.";
  el.loadMore.hidden = paging.next === null;
}

// Reloads the list from its start, as many as are shown now (so scrolling back is not lost).
export function refreshConversations() {
  var generation = ++paging.generation;
  var shown = state.conversations.filter(function (c) { return !c.pinned; }).length;
  var limit = Math.min(500, Math.max(PAGE_SIZE, shown));
  return api(listPath(null, limit)).then(function (data) {
    if (generation !== paging.generation) {
      return;
    }
    state.conversations = (data.conversations || []).filter(function (c) {
      return isUuid(c.id);
    }).map(normalised);
    paging.next = typeof data.next === "string" ? data.next : null;
    showListStatus();
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

function loadMore() {
  if (paging.loading || paging.next === null) {
    return;
  }
  paging.loading = true;
  var generation = paging.generation;
  el.loadMore.disabled = true;
  api(listPath(paging.next)).then(function (data) {
    if (generation !== paging.generation) {
      return;
    }
    var known = new Set(state.conversations.map(function (c) { return c.id; }));
    var more = (data.conversations || []).filter(function (c) {
      return isUuid(c.id) && !known.has(c.id.toLowerCase());
    }).map(normalised);
    state.conversations = state.conversations.concat(more);
    paging.next = typeof data.next === "string" ? data.next : null;
    showListStatus();
    if (list.renaming || list.openMenu) {
      list.dirty = true;
    } else {
      more.forEach(function (c) { el.list.appendChild(listItem(c)); });
      markCurrentInList();
    }
    announce(more.length + " more conversations listed.");
  }).catch(function (error) {
    el.listStatus.hidden = false;
    el.listStatus.textContent = error.detail;
  }).finally(function () {
    paging.loading = false;
    el.loadMore.disabled = false;
  });
}

function showArchived(archived) {
  paging.archived = archived;
  paging.next = null;
  state.conversations = [];
  el.list.replaceChildren();
  el.archiveToggle.textContent = archived ? "Show your conversations" : "Show archived conversations";
  el.listHeading.textContent = archived ? "Archived conversations" : "Your conversations";
  refreshConversations().then(function () {
    announce(archived ? "Showing archived conversations." : "Showing your conversations.");
  });
}

function setFlag(li, action) {
  var conversation = conversationById(li.dataset.id);
  if (!conversation) {
    return;
  }
  closeMenu(false);
  api(conversationPath(conversation.id) + "/" + action, {}).then(function () {
    var words = {
      pin: "pinned", unpin: "unpinned", archive: "archived", unarchive: "moved back from the archive",
    };
    announce("Conversation “" + displayTitle(conversation.title) + "” " + words[action] + ".");
    return refreshConversations();
  }).then(function () {
    var item = itemById(conversation.id);
    (item ? item.querySelector(".conversation-more") : el.newConversation).focus();
  }).catch(function (error) {
    el.listStatus.hidden = false;
    el.listStatus.textContent = error.detail;
  });
}

function renderList() {
  // Rebuilding would throw away a half-typed title or an open menu; do it afterwards.
  if (list.renaming || list.openMenu) {
    list.dirty = true;
    return;
  }
  list.dirty = false;
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

  li.classList.toggle("is-pinned", conversation.pinned);
  var link = make("a", "conversation-link");
  link.href = "#c/" + conversation.id;
  var name = make("span", "conversation-name");
  if (conversation.pinned) {
    name.appendChild(svgIcon(ICON_PIN));
    name.appendChild(make("span", "visually-hidden", "Pinned: "));
  }
  name.appendChild(make("span", "conversation-name-text", displayTitle(conversation.title)));
  link.appendChild(name);
  var meta = make("span", "conversation-meta");
  var time = make("time", "conversation-date", shortDate(conversation.updated_at));
  time.dateTime = conversation.updated_at || "";
  meta.appendChild(time);
  if (conversation.apiToken) {
    meta.appendChild(apiBadge(conversation.apiToken));
  }
  link.appendChild(meta);
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
  if (!conversation.archived) {
    var pin = make("button", "menu-item", conversation.pinned ? "Unpin" : "Pin to the top");
    pin.type = "button";
    pin.dataset.action = conversation.pinned ? "unpin" : "pin";
    menu.appendChild(pin);
  }
  var archive = make("button", "menu-item", conversation.archived ? "Move back from the archive" : "Archive");
  archive.type = "button";
  archive.dataset.action = conversation.archived ? "unarchive" : "archive";
  menu.appendChild(archive);
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

export function conversationById(id) {
  return state.conversations.find(function (c) { return c.id === id; });
}

function openMenu(li) {
  closeMenu(false);
  var button = li.querySelector(".conversation-more");
  var menu = li.querySelector(".conversation-menu");
  button.setAttribute("aria-expanded", "true");
  menu.hidden = false;
  li.classList.add("menu-open");
  list.openMenu = li;
  menu.querySelector(".menu-item").focus();
}

function closeMenu(returnFocus) {
  var li = list.openMenu;
  if (!li) {
    return;
  }
  list.openMenu = null;
  li.classList.remove("menu-open");
  li.querySelector(".conversation-menu").hidden = true;
  var button = li.querySelector(".conversation-more");
  button.setAttribute("aria-expanded", "false");
  if (returnFocus) {
    button.focus();
  }
  if (list.dirty && !list.renaming) {
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
  list.renaming = { li: li, form: form, input: input, error: error, id: conversation.id, saving: false };
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
    if (list.renaming && list.renaming.input === input && !list.renaming.saving) {
      saveRename(true);
    }
  });
}

function saveRename(fromBlur) {
  var renaming = list.renaming;
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
  var renaming = list.renaming;
  if (!renaming) {
    return;
  }
  list.renaming = null;
  renaming.form.remove();
  var link = renaming.li.querySelector(".conversation-link");
  link.hidden = false;
  renaming.li.querySelector(".conversation-more").hidden = false;
  var conversation = conversationById(renaming.id);
  if (conversation) {
    link.querySelector(".conversation-name-text").textContent = displayTitle(conversation.title);
    renaming.li.querySelector(".conversation-more").setAttribute(
      "aria-label", "Actions for \u201c" + displayTitle(conversation.title) + "\u201d"
    );
  }
  var id = renaming.id;
  if (list.dirty) {
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
  list.deleteTarget = {
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
  var target = list.deleteTarget;
  if (!target) {
    return;
  }
  el.deleteConfirm.disabled = true;
  api(conversationPath(target.id) + "/delete", {}).then(function () {
    list.deleteTarget = null;
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


// --- Events ----------------------------------------------------------------------------

export function initConversations() {
  el.newConversation.addEventListener("click", function () {
    startNewConversation(true);
  });

  el.loadMore.addEventListener("click", loadMore);
  el.archiveToggle.addEventListener("click", function () {
    showArchived(!paging.archived);
  });
  // The next page loads by itself when the end of the list scrolls into view.
  if ("IntersectionObserver" in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (entry) { return entry.isIntersecting; })) {
        loadMore();
      }
    }, { root: el.listScroller, rootMargin: "200px" }).observe(el.loadMore);
  }

  window.addEventListener("hashchange", function () {
    var revealing = messageFromHash() !== null;
    openFromHash();
    if (sidebarIsOpen()) {
      closeSidebar(false);
      if (!revealing) {
        el.input.focus();
      }
    }
  });

  el.list.addEventListener("click", function (event) {
    var li = event.target.closest(".conversation-item");
    if (!li) {
      return;
    }
    if (event.target.closest(".conversation-more")) {
      if (list.openMenu === li) {
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
    } else if (action && ["pin", "unpin", "archive", "unarchive"].indexOf(action.dataset.action) !== -1) {
      setFlag(li, action.dataset.action);
    } else if (event.target.closest(".conversation-link") && li.dataset.id === state.currentId) {
      closeSidebar(false);
      el.input.focus();
    } else if (event.target.closest(".menu-item")) {
      closeMenu(false);
    }
  });

  el.list.addEventListener("keydown", function (event) {
    if (!list.openMenu || !list.openMenu.contains(event.target)) {
      return;
    }
    var items = Array.prototype.slice.call(list.openMenu.querySelectorAll(".menu-item"));
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
    if (list.openMenu && !list.openMenu.contains(event.target)) {
      closeMenu(false);
    }
  });

  document.addEventListener("focusin", function (event) {
    if (list.openMenu && !list.openMenu.contains(event.target)) {
      closeMenu(false);
    }
  });

  el.deleteCancel.addEventListener("click", function () {
    el.deleteDialog.close();
  });
  el.deleteConfirm.addEventListener("click", confirmDelete);
  el.deleteDialog.addEventListener("close", function () {
    var target = list.deleteTarget;
    list.deleteTarget = null;
    if (target && target.returnFocus && target.returnFocus.isConnected) {
      target.returnFocus.focus();
    }
  });
}
