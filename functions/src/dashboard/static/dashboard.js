// The dashboard's only script: progressive enhancement. Every page reads
// fine without it; with it, a running job's output tail refreshes itself.
"use strict";
(function () {
  var POLL_MS = 5000;
  document.querySelectorAll("pre[data-live-tail]").forEach(function (pre) {
    var url = pre.getAttribute("data-live-tail");
    var note = document.getElementById(pre.getAttribute("aria-describedby"));
    if (note) { note.textContent = "Live: refreshed every 5 seconds while the job runs."; }
    var timer = setInterval(function () {
      fetch(url, { headers: { Accept: "text/plain" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          var finished = response.headers.get("X-Job-Finished") === "true";
          return response.text().then(function (text) {
            pre.textContent = text;
            if (finished) {
              clearInterval(timer);
              if (note) { note.textContent = "The job has finished."; }
            }
          });
        })
        .catch(function () {
          clearInterval(timer);
          if (note) { note.textContent = "Live updates stopped; reload the page to see more."; }
        });
    }, POLL_MS);
  });
})();
