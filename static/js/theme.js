// The colour theme: the system's (the default), or light or dark as the person chose with
// the header's theme button, remembered in this browser (localStorage). Loaded in <head>,
// before the page is drawn, so a chosen theme never flashes the other one first.
(function () {
  "use strict";

  var KEY = "theme";
  var THEMES = ["system", "light", "dark"];
  var NAMES = { system: "same as the system", light: "light", dark: "dark" };
  var root = document.documentElement;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return THEMES.indexOf(value) === -1 ? "system" : value;
    } catch (e) {
      return "system";
    }
  }

  // The code highlighting has a light and a dark style sheet; only the theme's applies.
  function styleSheets(theme) {
    var light = document.getElementById("code-style-light");
    var dark = document.getElementById("code-style-dark");
    if (!light || !dark) {
      return;
    }
    light.media = theme === "system" ? "not all and (prefers-color-scheme: dark)" : (theme === "light" ? "all" : "not all");
    dark.media = theme === "system" ? "(prefers-color-scheme: dark)" : (theme === "dark" ? "all" : "not all");
  }

  function apply(theme) {
    if (theme === "system") {
      root.removeAttribute("data-theme");
    } else {
      root.setAttribute("data-theme", theme);
    }
    styleSheets(theme);
    var button = document.getElementById("theme-toggle");
    if (button) {
      var next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
      button.querySelector(".theme-name").textContent = theme === "system" ? "System" : (theme === "light" ? "Light" : "Dark");
      button.setAttribute("aria-label", "Colour theme: " + NAMES[theme] + ". Change to " + NAMES[next] + ".");
    }
  }

  apply(stored());

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    apply(stored());
    if (!button) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var theme = THEMES[(THEMES.indexOf(stored()) + 1) % THEMES.length];
      try {
        if (theme === "system") {
          window.localStorage.removeItem(KEY);
        } else {
          window.localStorage.setItem(KEY, theme);
        }
      } catch (e) {
        // Storage refused (a private window): the choice lasts for this page only.
      }
      apply(theme);
    });
  });
})();
