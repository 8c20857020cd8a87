// Documents in the chat page: upload (button or drag and drop), indexing progress, which
// documents the next question uses, delete; and the sources under an answer. Everything a
// document says (its name, its passages) is put in the page as text, never as HTML.

import { announce, csrfToken, sessionEnded } from "./page.js";

var API = "/documents/api/documents";
var POLL_MS = 1500;

var panel = document.getElementById("documents-panel");
var list = document.getElementById("documents-list");
var fileInput = document.getElementById("documents-file");
var errorLine = document.getElementById("documents-error");
var chosen = new Set();
var pollTimer = 0;

function showError(text) {
  errorLine.textContent = text;
  errorLine.hidden = !text;
}

function request(method, path, body) {
  var init = { method: method, credentials: "same-origin", cache: "no-store",
    headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["X-CSRFToken"] = csrfToken;
  }
  if (body) {
    init.body = body;
  }
  return window.fetch(path, init).then(function (response) {
    if (response.status === 401 || response.redirected) {
      sessionEnded();
      throw new Error("Your session has ended. Sign in again.");
    }
    return response.json().catch(function () { return {}; }).then(function (data) {
      if (!response.ok) {
        throw new Error((data.error && data.error.detail)
          || "The server could not do that (HTTP " + response.status + "). Try again.");
      }
      return data;
    });
  });
}

function row(document) {
  var item = window.document.createElement("li");
  item.className = "document";
  item.dataset.id = document.id;
  item.dataset.status = document.status;
  var label = window.document.createElement("label");
  var box = window.document.createElement("input");
  box.type = "checkbox";
  box.disabled = document.status !== "ready";
  box.checked = chosen.has(document.id) && document.status === "ready";
  box.addEventListener("change", function () {
    if (box.checked) {
      chosen.add(document.id);
    } else {
      chosen.delete(document.id);
    }
  });
  var name = window.document.createElement("span");
  name.className = "document-name";
  name.textContent = document.name;
  label.append(box, name);
  var status = window.document.createElement("span");
  status.className = "document-status";
  status.textContent = document.status_label;
  var remove = window.document.createElement("button");
  remove.type = "button";
  remove.className = "link-button document-delete";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", "Delete " + document.name);
  remove.addEventListener("click", function () {
    request("DELETE", API + "/" + encodeURIComponent(document.id)).then(function () {
      chosen.delete(document.id);
      announce(document.name + " deleted.");
      refresh();
    }).catch(function (error) { showError(error.message); });
  });
  item.append(label, status, remove);
  return item;
}

function refresh() {
  return request("GET", API).then(function (data) {
    var documents = data.documents || [];
    var known = new Set(documents.map(function (d) { return d.id; }));
    chosen.forEach(function (id) {
      if (!known.has(id)) {
        chosen.delete(id);
      }
    });
    list.replaceChildren.apply(list, documents.map(row));
    var busy = documents.some(function (d) { return d.status === "queued" || d.status === "indexing"; });
    window.clearTimeout(pollTimer);
    if (busy) {
      pollTimer = window.setTimeout(refresh, POLL_MS);
    }
  }).catch(function (error) { showError(error.message); });
}

function upload(file) {
  showError("");
  var form = new FormData();
  form.append("file", file);
  return request("POST", API, form).then(function (document) {
    chosen.add(document.id);
    announce(document.name + " uploaded; it is being indexed.");
    return refresh();
  }).catch(function (error) { showError(file.name + ": " + error.message); });
}

function uploadAll(files) {
  return Array.prototype.reduce.call(files, function (previous, file) {
    return previous.then(function () { return upload(file); });
  }, Promise.resolve());
}

// The sources the next message uses: the documents ticked and ready, or null for none.
export function selectedSources() {
  var ids = Array.from(chosen).filter(function (id) {
    var item = list && list.querySelector('[data-id="' + id + '"]');
    return item && item.dataset.status === "ready";
  });
  return ids.length ? { documents: ids } : null;
}

// Under an answer: its sources, each opening to the quoted passage.
export function showCitations(node, citations) {
  var old = node.querySelector(".citations");
  if (old) {
    old.remove();
  }
  if (!Array.isArray(citations) || !citations.length) {
    return;
  }
  var box = window.document.createElement("div");
  box.className = "citations";
  var heading = window.document.createElement("p");
  heading.className = "citations-heading";
  heading.textContent = "Sources";
  var items = window.document.createElement("ol");
  citations.forEach(function (citation) {
    var item = window.document.createElement("li");
    var details = window.document.createElement("details");
    var summary = window.document.createElement("summary");
    summary.textContent = String(citation.name || "Document")
      + (citation.page ? ", page " + citation.page : "");
    var quote = window.document.createElement("blockquote");
    quote.textContent = String(citation.quote || "");
    details.append(summary, quote);
    item.append(details);
    items.append(item);
  });
  box.append(heading, items);
  node.append(box);
}

export function initDocuments() {
  if (!panel) {
    return;
  }
  fileInput.addEventListener("change", function () {
    uploadAll(fileInput.files).then(function () { fileInput.value = ""; });
  });
  var zone = document.getElementById("composer");
  zone.addEventListener("dragover", function (event) {
    if (event.dataTransfer && Array.from(event.dataTransfer.types).indexOf("Files") !== -1) {
      event.preventDefault();
      zone.classList.add("is-dropping");
    }
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("is-dropping"); });
  zone.addEventListener("drop", function (event) {
    zone.classList.remove("is-dropping");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      event.preventDefault();
      uploadAll(event.dataTransfer.files);
    }
  });
  refresh();
}
