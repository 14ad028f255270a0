// Reload the page every data-refresh seconds, unless the editor is typing in a form
// or the tab is hidden. No inline script: the Content-Security-Policy forbids it.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!seconds || seconds < 5) { return; }
  function busy() {
    var el = document.activeElement;
    if (el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA")) { return true; }
    var inputs = document.querySelectorAll("form.resolve input[name=url], form.pause input[name=reason]");
    for (var i = 0; i < inputs.length; i++) { if (inputs[i].value) { return true; } }
    return document.hidden;
  }
  window.setInterval(function () { if (!busy()) { window.location.reload(); } }, seconds * 1000);
}());
