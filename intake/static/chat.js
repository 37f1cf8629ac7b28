/* Live Help: the conversation live (Server-Sent Events) and messages sent without
   reloading. Without this script the page still works: the conversation frame
   refreshes itself and the form posts. */
(function () {
  "use strict";
  var section = document.querySelector("section.chat");
  if (!section || !window.EventSource || !window.fetch) { return; }
  var live = section.querySelector(".chat-live");
  var log = document.getElementById("chat-log");
  var frame = section.querySelector("iframe.chat-frame-log");
  var announce = document.getElementById("chat-announce");
  var viewer = section.getAttribute("data-viewer");
  var last = parseInt(log.getAttribute("data-last") || "0", 10);
  if (frame) { frame.parentNode.removeChild(frame); }
  live.hidden = false;

  function text(template, key, value) { return template.replace("{" + key + "}", value); }

  function render(e) {
    var li = document.createElement("li");
    li.id = "m" + e.id;
    if (e.author === "system") {
      var i = e.body.indexOf(":");
      var what = i < 0 ? e.body : e.body.slice(0, i);
      var value = i < 0 ? "" : e.body.slice(i + 1);
      li.className = "chat-system";
      if (what === "joined") { li.textContent = text(section.getAttribute("data-joined"), "name", value); }
      else if (what === "transferred") { li.textContent = text(section.getAttribute("data-transferred"), "agency", value); }
      else if (what === "ended") { li.textContent = section.getAttribute("data-ended"); }
      else { return null; }
      return li;
    }
    li.className = "chat-" + e.author;
    var who = document.createElement("span");
    who.className = "chat-who";
    if (e.author === "visitor") { who.textContent = e.name || (viewer === "visitor" ? section.getAttribute("data-you") : section.getAttribute("data-visitor")); }
    else { who.textContent = e.name || section.getAttribute("data-operator"); }
    var body = document.createElement("span");
    body.className = "chat-text";
    body.textContent = " " + e.body;
    li.appendChild(who);
    li.appendChild(body);
    return li;
  }

  var source = new EventSource(section.getAttribute("data-stream") + "?after=" + last);
  source.addEventListener("message", function (msg) {
    var e = JSON.parse(msg.data);
    if (e.id <= last) { return; }
    last = e.id;
    var li = render(e);
    if (!li) { return; }
    log.appendChild(li);
    if (announce) { announce.textContent = li.textContent; }
    if (e.author === "system") {
      var what = e.body.split(":")[0];
      var notice = document.getElementById("unavailable");
      if (what === "joined" && notice) { notice.hidden = true; notice.setAttribute("data-joined", "1"); }
      if (what === "ended" || (viewer === "operator" && what === "transferred")) {
        source.close();
        window.setTimeout(function () { window.location.reload(); }, 300);
      }
    }
  });

  /* Nobody accepted within the agency's wait: offer to leave the chat as a message. */
  var offer = document.getElementById("unavailable");
  if (offer && offer.hidden && offer.getAttribute("data-wait-left")) {
    window.setTimeout(function () {
      if (offer.getAttribute("data-joined") !== "1") {
        offer.hidden = false;
        if (announce) { announce.textContent = offer.querySelector("h2").textContent; }
      }
    }, parseInt(offer.getAttribute("data-wait-left"), 10) * 1000);
  }

  var form = document.getElementById("send-form");
  var status = document.getElementById("send-status");
  if (form) {
    form.addEventListener("submit", function (event) {
      if (document.getElementById("sensitive-warning")) { return; } /* the server's page decides */
      event.preventDefault();
      var data = new FormData(form);
      fetch(form.action, {method: "POST", body: new URLSearchParams(data), credentials: "same-origin",
                          headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (response.status === 201) {
            form.querySelector("textarea").value = "";
            if (status) { status.textContent = ""; }
            return;
          }
          form.submit(); /* a warning or an error: the page without script shows it */
        })
        .catch(function () { form.submit(); });
    });
  }
})();
