// Small helpers with no state of their own: identifiers, counting characters as the server
// does, HTML escaping, dates and numbers in the user's locale, and building DOM nodes.

var UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value) {
  return typeof value === "string" && UUID_RE.test(value);
}

export function newClientId() {
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
export function charCount(text) {
  return text.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, "_").length;
}

var utf8 = new TextEncoder();

// The size of a text frame on the wire: the UTF-8 bytes of the string.
export function utf8Length(text) {
  return utf8.encode(text).length;
}

var HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, function (c) {
    return HTML_ESCAPES[c];
  });
}

export var numberFormat = new Intl.NumberFormat();
var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
var dayFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
var fullDateFormat = new Intl.DateTimeFormat(undefined, {
  day: "numeric", month: "short", year: "numeric",
});

export function shortDate(iso) {
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

export var ICON_MORE = "M5 12h.01M12 12h.01M19 12h.01";
export var ICON_PIN = "M12 17v5M8 3h8l-1 6 3 4H6l3-4z";
export var ICON_COPY = "M9 9h10v10H9zM5 15V5h10";

export function svgIcon(pathData) {
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

export function make(tag, className, text) {
  var node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

// A "Copy" button (icon and label); ``kind`` is copy-code or copy-message, which the click
// handler in copy.js tells apart.
export function copyButton(kind, label) {
  var button = make("button", "copy-button " + kind);
  button.type = "button";
  button.appendChild(svgIcon(ICON_COPY));
  button.appendChild(make("span", "copy-label", "Copy"));
  button.setAttribute("aria-label", label);
  return button;
}
