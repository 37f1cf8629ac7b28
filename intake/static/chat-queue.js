/* The operators' Live Help queue: the list of chats is fetched again whenever the
   server says it changed (Server-Sent Events). Without script: the "Refresh" link. */
(function () {
  "use strict";
  var box = document.getElementById("chat-queue");
  if (!box || !window.EventSource || !window.fetch || !window.DOMParser) { return; }
  var announce = document.getElementById("queue-announce");
  var source = new EventSource(box.getAttribute("data-stream"));
  source.addEventListener("changed", function () {
    fetch(window.location.href, {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("chat-queue");
        if (!fresh) { return; }
        var table = box.querySelector("table, p.empty-queue");
        var next = fresh.querySelector("table, p.empty-queue");
        if (table && next) { table.replaceWith(document.importNode(next, true)); }
        if (announce) { announce.textContent = box.getAttribute("data-changed"); }
      });
  });
})();
