/* Live progress of a digest being sent: polls a same-origin JSON endpoint and updates the
   <progress> bar, the counts and the status sentence. Without JavaScript, the page's
   <noscript> meta refresh does the same job by reloading. */
(function () {
  "use strict";
  var bar = document.querySelector("progress[data-progress-url]");
  if (!bar || !window.fetch) {
    return;
  }
  var url = bar.getAttribute("data-progress-url");
  var interval = 1000 * (parseFloat(bar.getAttribute("data-poll-seconds")) || 2);
  var summary = document.getElementById("digest-summary");
  var failures = 0;

  function show(data) {
    if (data.recipients > 0) {
      bar.max = data.recipients;
      bar.value = data.done;
    } else if (data.finished) {
      bar.max = 1;
      bar.value = 1;
    } else {
      bar.removeAttribute("value"); // indeterminate while the fan-out has not counted yet
    }
    bar.textContent = data.done + " / " + data.recipients;
    Object.keys(data).forEach(function (key) {
      var cell = document.querySelector('[data-count="' + key + '"]');
      if (cell) {
        cell.textContent = String(data[key]);
      }
    });
    if (summary && summary.textContent !== data.summary) {
      summary.textContent = data.summary;
    }
    if (summary) {
      summary.setAttribute("data-status", data.status);
    }
    var badge = document.querySelector("#digest-status-badge .badge");
    if (badge) {
      badge.className = "badge badge-" + data.status;
      badge.textContent = data.status_label;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        show(data);
        if (!data.finished) {
          window.setTimeout(poll, interval);
        }
      })
      .catch(function () {
        failures += 1; // back off, and give up after a while rather than poll forever
        if (failures < 10) {
          window.setTimeout(poll, interval * 2);
        }
      });
  }

  window.setTimeout(poll, interval);
})();
