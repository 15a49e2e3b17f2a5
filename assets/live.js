// Live updates for the dashboard: one EventSource on the owner's stream (/api/admin/stream, which
// the session cookie authenticates), and every change it announces refreshes the cards in place
// (app.js's refresh). There is no polling: EventSource reconnects by itself and sends
// Last-Event-ID, so the server replays what happened while the connection was down.
(function () {
  'use strict';

  let source = null;
  let events = 0;
  let pending = null;
  let reopen = null;

  /** One refresh for a burst of changes (a batch of pushes arrives as many events at once). */
  function refreshSoon() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      if (window.gptDashboard) window.gptDashboard.refresh();
    }, 100);
  }

  function onChange() {
    events += 1;
    refreshSoon();
  }

  function start() {
    if (source) return;
    clearTimeout(reopen);
    source = new EventSource('/api/admin/stream');
    source.addEventListener('push.created', onChange);
    source.addEventListener('push.updated', onChange);
    // The server could not replay everything missed: show the current state.
    source.addEventListener('stream.expired', refreshSoon);
    source.addEventListener('error', () => {
      // A refused connection (the session ended) is not retried by EventSource itself.
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        reopen = setTimeout(start, 5000);
      }
    });
  }

  function stop() {
    clearTimeout(reopen);
    if (source) source.close();
    source = null;
  }

  window.gptLive = {
    start,
    stop,
    /** True while the stream is open; the browser test reads it. */
    connected: () => source !== null && source.readyState === EventSource.OPEN,
    /** How many changes arrived over the stream so far. */
    events: () => events,
  };
})();
