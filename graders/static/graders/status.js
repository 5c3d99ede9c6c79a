/* Live grading status on a submission's page (progressive enhancement; no dependencies).
 *
 * Every 2 seconds the page asks data-status-url for the submission's status and rewrites the
 * aria-live region, so a screen reader hears "Grading" and then the score without a reload. Once
 * the status settles (autograded, graded or failed) it stops; a failure reloads the page once to
 * show the server's message. Without JavaScript, reloading the page shows the same information.
 */
(function () {
  "use strict";
  var root = document.querySelector("[data-status-url]");
  if (!root || !window.fetch || !window.JSON) {
    return;
  }
  var INTERVAL_MS = 2000;
  var MAX_BACKOFF_MS = 30000;
  var SETTLED = { autograded: true, graded: true, failed: true };

  var url = root.getAttribute("data-status-url");
  var labels = {};
  try {
    labels = JSON.parse(root.getAttribute("data-labels") || "{}");
  } catch (error) {
    labels = {};
  }
  var scoreTemplate = root.getAttribute("data-score-template") || "{score} / {max}";
  var penaltyTemplate = root.getAttribute("data-penalty-template") || "{points}";
  var provisional = root.getAttribute("data-provisional") || "";
  var statusText = root.querySelector("[data-status-text]");
  var waiting = root.querySelector("[data-waiting]");
  var scoreOut = root.querySelector("[data-score]");
  var penaltyOut = root.querySelector("[data-penalty]");
  var feedbackOut = root.querySelector("[data-feedback]");
  var current = root.getAttribute("data-status");
  var failures = 0;

  function formatPoints(value) {
    return String(Math.round(value * 100) / 100);
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : match;
    });
  }

  function showScore(data) {
    var value = data.score !== null ? data.score : data.auto_score;
    if (value === null || value === undefined) {
      return;
    }
    scoreOut.textContent = fill(scoreTemplate, {
      score: formatPoints(value),
      max: formatPoints(data.max_score)
    });
    if (!data.final && provisional) {
      var note = document.createElement("em");
      note.textContent = "(" + provisional + ")";
      scoreOut.appendChild(document.createTextNode(" "));
      scoreOut.appendChild(note);
    }
    scoreOut.hidden = false;
    if (data.late_penalty) {
      penaltyOut.textContent = fill(penaltyTemplate, { points: formatPoints(data.late_penalty) });
      penaltyOut.hidden = false;
    }
  }

  function showFeedback(data) {
    if (!data.feedback_url) {
      return;
    }
    var link = feedbackOut.querySelector("a");
    link.setAttribute("href", data.feedback_url);
    feedbackOut.hidden = false;
  }

  function update(data) {
    if (data.status !== current) {
      current = data.status;
      root.setAttribute("data-status", current);
      statusText.textContent = labels[current] || current;
    }
    if (!SETTLED[data.status]) {
      return false;
    }
    if (data.status === "failed") {
      window.location.reload(); // the reason is on the page, not in the status
      return true;
    }
    if (waiting) {
      waiting.hidden = true;
    }
    showScore(data);
    showFeedback(data);
    return true;
  }

  function schedule(delay) {
    window.setTimeout(poll, delay);
  }

  function poll() {
    if (document.visibilityState === "hidden") {
      schedule(INTERVAL_MS); // nobody is looking: ask again later, without a request
      return;
    }
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        if (!update(data)) {
          schedule(INTERVAL_MS);
        }
      })
      .catch(function () {
        failures += 1; // the network or the server is away: ask less often until it answers again
        schedule(Math.min(MAX_BACKOFF_MS, INTERVAL_MS * Math.pow(2, failures)));
      });
  }

  schedule(INTERVAL_MS);
})();
