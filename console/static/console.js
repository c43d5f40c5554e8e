// licenseops console: the few behaviours a server-rendered page cannot
// have — tri-state product boxes, selecting users as boxes change, and
// following a running operation. No inline script: the page's data is in
// data- attributes, and the CSP allows this file only.
"use strict";

(function () {
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function post(url, params) {
    var body = new URLSearchParams(params);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: body
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  // ---- Manage licenses: tri-state product boxes.
  // A box starts as the selection holds the product: checked (all), mixed
  // (some) or clear (none). Each click moves to the next state of its
  // cycle; a state other than the start asks for a change, sent in the
  // row's hidden "act" field: checked assigns, clear revokes.
  var cycles = { some: ["mixed", "on", "off"], all: ["on", "off"], none: ["off", "on"] };

  function show(box, state) {
    box.indeterminate = state === "mixed";
    box.checked = state === "on";
    box.setAttribute("aria-checked", state === "mixed" ? "mixed" : state === "on" ? "true" : "false");
  }

  function setupTri(box) {
    var start = box.getAttribute("data-start");
    var cycle = cycles[start] || cycles.none;
    var row = box.closest("tr");
    var act = row.querySelector("input.act");
    var note = row.querySelector(".change");
    var state = act.value === "assign" ? "on" : act.value === "revoke" ? "off" : cycle[0];
    function apply() {
      show(box, state);
      var a = state === cycle[0] ? "keep" : state === "on" ? "assign" : "revoke";
      act.value = a;
      row.classList.toggle("changed", a !== "keep");
      if (note) { note.textContent = a === "keep" ? "" : (box.getAttribute("data-" + a + "-text") || ""); }
    }
    box.addEventListener("click", function () {
      state = cycle[(cycle.indexOf(state) + 1) % cycle.length];
      apply();
    });
    apply();
  }

  document.querySelectorAll("input.tri").forEach(setupTri);

  // ---- Users: selection kept on the server as boxes change.
  var bar = document.getElementById("selection-bar");
  var pending = Promise.resolve();
  if (bar) {
    var url = bar.getAttribute("data-selection-url");
    var link = document.getElementById("selected-link");
    var manage = document.getElementById("manage-link");
    var status = document.getElementById("selection-status");
    var pageBox = document.getElementById("select-page");
    var boxes = Array.prototype.slice.call(document.querySelectorAll("input.select-user"));

    var change = function (ids, on) {
      var params = [["op", on ? "add" : "remove"]];
      ids.forEach(function (id) { params.push(["user", id]); });
      pending = pending.then(function () { return post(url, params); }).then(function (res) {
        if (res.text) { link.textContent = res.text; }
        if (manage) {
          manage.classList.toggle("disabled", res.count === 0);
          if (res.count === 0) { manage.setAttribute("aria-disabled", "true"); } else { manage.removeAttribute("aria-disabled"); }
        }
        if (status) { status.textContent = link.textContent; }
      }).catch(function () {
        if (status) { status.textContent = bar.getAttribute("data-error"); }
      });
      return pending;
    };
    var syncPageBox = function () {
      if (pageBox) { pageBox.checked = boxes.length > 0 && boxes.every(function (b) { return b.checked; }); }
    };
    boxes.forEach(function (b) {
      b.addEventListener("change", function () { change([b.value], b.checked); syncPageBox(); });
    });
    if (pageBox) {
      pageBox.addEventListener("change", function () {
        var ids = [];
        boxes.forEach(function (b) { if (b.checked !== pageBox.checked) { b.checked = pageBox.checked; ids.push(b.value); } });
        if (ids.length) { change(ids, pageBox.checked); }
      });
    }
    // Leave the page only once every change has reached the server.
    document.querySelectorAll("a[href]").forEach(function (a) {
      a.addEventListener("click", function (e) {
        if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
        e.preventDefault();
        pending.then(function () { window.location.href = a.href; });
      });
    });
  }
  document.querySelectorAll("a.disabled[aria-disabled]").forEach(function (a) {
    a.addEventListener("click", function (e) { if (a.getAttribute("aria-disabled") === "true") { e.preventDefault(); } });
  });

  // ---- Confirmation: follow a running operation, then show its outcome.
  var op = document.getElementById("operation");
  if (op && op.getAttribute("data-running")) {
    var progressURL = op.getAttribute("data-progress-url");
    var resultsURL = op.getAttribute("data-results-url");
    var tick = function () {
      fetch(progressURL, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (p) {
          var bar = document.getElementById("op-progress");
          var text = document.getElementById("progress-text");
          if (bar) { bar.max = p.total; bar.value = p.done; bar.textContent = p.done + " / " + p.total; }
          if (text) { text.textContent = p.text; }
          if (p.finished) {
            return fetch(resultsURL, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
              // The fragment is the server's own escaped template output.
              op.innerHTML = html;
              op.removeAttribute("data-running");
              var h = document.getElementById("op-heading");
              if (h) { h.setAttribute("tabindex", "-1"); h.focus(); }
            });
          }
          setTimeout(tick, 1000);
        })
        .catch(function () { setTimeout(tick, 3000); });
    };
    setTimeout(tick, 500);
  }
})();
