// Offers the backup codes shown on the page as a text file and a print button.
// The codes never leave the browser: the file is made from the page itself.
(function () {
  "use strict";
  var list = document.querySelector("[data-backup-codes]");
  if (!list) {
    return;
  }
  var codes = Array.prototype.map.call(list.querySelectorAll("code"), function (node) {
    return node.textContent.trim();
  });
  var text = [
    list.dataset.site + " backup codes for " + list.dataset.user,
    "Each code works once. Keep this file somewhere safe, away from your phone.",
    "",
  ].concat(codes).join("\n") + "\n";

  var download = document.getElementById("download-codes");
  download.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  download.setAttribute("download", list.dataset.filename);
  download.hidden = false;

  var print = document.getElementById("print-codes");
  print.addEventListener("click", function () {
    window.print();
  });
  print.hidden = false;
})();
