// The conversation sidebar on narrow screens: it opens over the page from the toolbar
// button and closes with its close button, the backdrop, Escape, or a wider window.

import { app, el } from "./page.js";

var narrow = window.matchMedia("(max-width: 50rem)");

function openSidebar() {
  app.classList.add("sidebar-open");
  el.sidebarToggle.setAttribute("aria-expanded", "true");
  el.backdrop.hidden = false;
  var current = el.list.querySelector(".is-current .conversation-link");
  (current || el.newConversation).focus();
}

export function sidebarIsOpen() {
  return app.classList.contains("sidebar-open");
}

export function closeSidebar(returnFocus) {
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

export function initSidebar() {
  el.sidebarToggle.addEventListener("click", openSidebar);
  el.sidebarClose.addEventListener("click", function () {
    closeSidebar(true);
  });
  el.backdrop.addEventListener("click", function () {
    closeSidebar(true);
  });
  el.sidebar.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && app.classList.contains("sidebar-open") && !event.defaultPrevented) {
      event.preventDefault();
      closeSidebar(true);
    }
  });
  narrow.addEventListener("change", function () {
    if (!narrow.matches) {
      closeSidebar(false);
    }
  });
}
