/* Active reading time for online units (progressive enhancement; no dependencies).
 *
 * A second counts only while the page is visible and the reader has interacted with it (scroll, key,
 * pointer, touch) within the last minute. Every data-heartbeat-seconds the counted seconds are sent
 * to data-heartbeat-url; the server accepts at most the real time elapsed, so this script only
 * reports, it cannot grant hours. Without JavaScript the lesson still reads; only the time is not kept.
 */
(function () {
  "use strict";
  var root = document.querySelector("[data-heartbeat-url]");
  if (!root || !window.fetch || !document.addEventListener) {
    return;
  }
  var url = root.getAttribute("data-heartbeat-url");
  var token = root.getAttribute("data-csrf-token") || "";
  var interval = parseInt(root.getAttribute("data-heartbeat-seconds"), 10) || 15;
  var IDLE_MS = 60 * 1000;
  var MAX_PENDING = 10 * interval; // never hoard more than this if the network is down
  var minutesOut = root.querySelector("[data-active-minutes]");
  var creditOut = root.querySelector("[data-credit-status]");
  var credited = root.getAttribute("data-credited") === "true";

  var lastInteraction = Date.now(); // opening the page is an interaction
  var lastTick = Date.now();
  var pending = 0; // active seconds counted and not yet accepted by the server
  var sinceSend = 0;
  var sending = false;

  function touch() {
    lastInteraction = Date.now();
  }
  ["scroll", "wheel", "keydown", "pointerdown", "pointermove", "touchstart", "touchmove"].forEach(
    function (name) {
      window.addEventListener(name, touch, { passive: true, capture: true });
    }
  );

  function isActive(now) {
    return document.visibilityState === "visible" && now - lastInteraction <= IDLE_MS;
  }

  function send(keepalive) {
    var seconds = Math.floor(pending);
    if (sending || seconds < 1) {
      return;
    }
    sending = true;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive: !!keepalive,
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify({ seconds: seconds })
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("heartbeat refused: " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        // What was sent is settled (accepted or capped); keep counting from the rest.
        pending = Math.max(0, pending - seconds);
        if (minutesOut && typeof data.active_seconds === "number") {
          minutesOut.textContent = String(Math.floor(data.active_seconds / 60));
        }
        if (data.credited && !credited && creditOut) {
          creditOut.textContent = root.getAttribute("data-credited-message") || "";
        }
        credited = !!data.credited;
      })
      .catch(function () {
        pending = Math.min(pending, MAX_PENDING); // try again with the next heartbeat
      })
      .then(function () {
        sending = false;
      });
  }

  window.setInterval(function () {
    var now = Date.now();
    var step = Math.min(now - lastTick, 2000) / 1000; // a throttled or sleeping timer adds nothing extra
    lastTick = now;
    if (isActive(now)) {
      pending += step;
    }
    sinceSend += step;
    if (sinceSend >= interval) {
      sinceSend = 0;
      send(false);
    }
  }, 1000);

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      send(true);
    } else {
      lastTick = Date.now();
      touch();
    }
  });
  window.addEventListener("pagehide", function () {
    send(true);
  });
})();
