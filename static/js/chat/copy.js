// The Copy buttons on answers (their Markdown source) and on code blocks (the code), with
// the button's label saying whether the clipboard took it.

import { announce, el } from "./page.js";
import { messageSource } from "./messages.js";
import { showComposerError } from "./composer.js";

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

export function initCopy() {
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
}
