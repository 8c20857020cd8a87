// Documents in the chat page: upload (button or drag and drop) with its transfer progress,
// indexing progress, which documents the next question uses, delete; and the sources under an
// answer. Everything a document says (its name, its passages) is put in the page as text,
// never as HTML.

import { announce, csrfToken, sessionEnded } from "./page.js";
import { make } from "./util.js";

var API = "/documents/api/documents";
var POLL_MS = 1500;

var panel = document.getElementById("documents-panel");
var list = document.getElementById("documents-list");
var fileInput = document.getElementById("documents-file");
var errorLine = document.getElementById("documents-error");
var chosen = new Set();
var pollTimer = 0;
// Rows of files still being sent, shown above the stored documents until the server answers.
var sending = [];
var errors = [];

function showError(text) {
  errors = text ? [text] : [];
  errorLine.textContent = text;
  errorLine.hidden = !text;
}

function addError(text) {
  if (errors.indexOf(text) !== -1) {
    return;
  }
  errors.push(text);
  errorLine.textContent = errors.join(" ");
  errorLine.hidden = false;
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
  return window.fetch(path, init).catch(function () {
    throw new Error("The server cannot be reached; check the network connection.");
  }).then(function (response) {
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
    list.replaceChildren.apply(list, sending.concat(documents.map(row)));
    var busy = documents.some(function (d) { return d.status === "queued" || d.status === "indexing"; });
    window.clearTimeout(pollTimer);
    if (busy) {
      pollTimer = window.setTimeout(refresh, POLL_MS);
    }
  }).catch(function (error) { addError(error.message); });
}

function megabytes(bytes) {
  return Math.round(bytes / (1024 * 1024)) + " MB";
}

// A file on its way: its name, "uploading NN%" and a progress bar.
function sendingRow(file) {
  var item = make("li", "document is-sending");
  item.dataset.status = "uploading";
  var status = make("span", "document-status", "uploading 0%");
  var bar = make("progress", "document-progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", "Uploading " + file.name);
  item.append(make("span", "document-name", file.name), status, bar);
  item.showProgress = function (percent) {
    bar.value = percent;
    status.textContent = "uploading " + percent + "%";
  };
  return item;
}

// POST one file with XMLHttpRequest, whose upload events say how much has been sent (fetch
// cannot); resolves with the stored document, rejects with a sentence for the person.
function send(file, onProgress) {
  var form = new FormData();
  form.append("file", file);
  return new Promise(function (resolve, reject) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", API);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable && event.total) {
        onProgress(Math.min(100, Math.floor(100 * event.loaded / event.total)));
      }
    });
    xhr.addEventListener("load", function () {
      var data = {};
      try {
        data = JSON.parse(xhr.responseText || "{}");
      } catch (ignored) {
        data = {};
      }
      var redirected = xhr.responseURL && new URL(xhr.responseURL).pathname !== API;
      if (xhr.status === 401 || redirected) {
        sessionEnded();
        reject(new Error("Your session has ended. Sign in again."));
      } else if (xhr.status < 200 || xhr.status >= 300) {
        reject(new Error((data.error && data.error.detail)
          || "The server could not store the file (HTTP " + xhr.status + "). Try again."));
      } else {
        resolve(data);
      }
    });
    xhr.addEventListener("error", function () {
      reject(new Error("The connection was lost while the file was being sent; "
        + "check the network and upload it again."));
    });
    xhr.send(form);
  });
}

function upload(file) {
  var limit = Number(panel.dataset.maxBytes) || 0;
  if (limit && file.size > limit) {
    addError(file.name + ": The file is too large; files may be at most "
      + megabytes(limit) + ".");
    return Promise.resolve();
  }
  var item = sendingRow(file);
  sending.push(item);
  list.prepend(item);
  announce("Uploading " + file.name + ".");
  var done = function () {
    sending = sending.filter(function (other) { return other !== item; });
    item.remove();
  };
  return send(file, item.showProgress).then(function (document) {
    done();
    chosen.add(document.id);
    announce(document.name + " uploaded; it is being indexed.");
    return refresh();
  }, function (error) {
    done();
    addError(file.name + ": " + error.message);
    return refresh();
  });
}

function uploadAll(files) {
  showError("");
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
