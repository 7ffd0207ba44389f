// The receiver's page: local times with "5 min ago", and a refresh without a reload.
// Served as a file (the Content-Security-Policy allows no inline script). Without it the page
// still works: times stay in UTC and a reload refreshes.
(function () {
  "use strict";

  var body = document.body;
  var every = Math.max(1, Number(body.getAttribute("data-refresh")) || 10) * 1000;

  function relative(date, now) {
    var seconds = Math.round((now - date.getTime()) / 1000);
    var future = seconds < 0;
    var s = Math.abs(seconds);
    var text;
    if (s < 10) {
      return "just now";
    } else if (s < 90) {
      text = s + " s";
    } else if (s < 90 * 60) {
      text = Math.round(s / 60) + " min";
    } else if (s < 36 * 3600) {
      text = Math.round(s / 3600) + " h";
    } else {
      text = Math.round(s / 86400) + " d";
    }
    return future ? "in " + text : text + " ago";
  }

  function local(date, now) {
    var sameDay = new Date(now).toDateString() === date.toDateString();
    var time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (sameDay) {
      return time;
    }
    return date.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time;
  }

  // <time datetime="2026-12-01T08:00:00.000Z">: local time, and how long ago (or until)
  function localize(root) {
    var now = Date.now();
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var date = new Date(t.getAttribute("datetime"));
      if (isNaN(date.getTime())) {
        continue;
      }
      t.title = t.getAttribute("datetime");
      var rel = relative(date, now);
      t.textContent = t.hasAttribute("data-short") ? rel : local(date, now) + " (" + rel + ")";
    }
  }

  function stale(yes, why) {
    var note = document.getElementById("stale");
    if (note) {
      note.hidden = !yes;
      note.textContent = yes ? "Not refreshed: " + why : "";
    }
  }

  // the same page rendered again; its live parts replace ours (no reload, scroll kept)
  function refresh() {
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error("HTTP " + resp.status);
        }
        return resp.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var parts = document.querySelectorAll("[data-live]");
        for (var i = 0; i < parts.length; i++) {
          var next = fresh.getElementById(parts[i].id);
          if (next) {
            parts[i].replaceWith(document.adoptNode(next));
          }
        }
        localize(document);
        stale(false);
        body.setAttribute("data-refreshed", String(Number(body.getAttribute("data-refreshed") || 0) + 1));
      })
      .catch(function (err) {
        stale(true, err.message);
      })
      .then(function () {
        window.setTimeout(refresh, every);
      });
  }

  localize(document);
  window.setTimeout(refresh, every);
})();
