// Gatehouse console: small progressive enhancements; every page works without it.
(function () {
  'use strict';
  // Times are shown in UTC, as the audit trail and evidence packs state
  // them; the tooltip gives the reader's own time, with its zone.
  document.querySelectorAll('time[datetime]').forEach(function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d.getTime())) {
      t.title = d.toLocaleString(undefined, {
        year: 'numeric', month: 'short', day: 'numeric',
        hour: '2-digit', minute: '2-digit', second: '2-digit',
        timeZoneName: 'short'
      }) + ' (your time)';
    }
  });
  // One click, one decision: disable a form's buttons once it is submitted.
  document.querySelectorAll('form.decide, form.revoke').forEach(function (f) {
    f.addEventListener('submit', function (e) {
      var chosen = e.submitter;
      setTimeout(function () {
        f.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
        if (chosen) { chosen.textContent = chosen.textContent + '…'; }
      }, 0);
    });
  });
})();

// SSH replay: start the vendored asciinema-player on the recording, and let
// the command list seek to the moment each command was typed.
(function () {
  'use strict';
  var el = document.getElementById('player');
  if (!el || !window.AsciinemaPlayer) { return; }
  var options = { fit: 'width', idleTimeLimit: 2, preload: true };
  // A recording without a terminal size (exec without a PTY) plays in 80x24.
  var cols = parseInt(el.getAttribute('data-cols') || '', 10);
  var rows = parseInt(el.getAttribute('data-rows') || '', 10);
  if (cols > 0) { options.cols = cols; }
  if (rows > 0) { options.rows = rows; }
  var player = window.AsciinemaPlayer.create(el.getAttribute('data-cast'), el, options);
  el.setAttribute('data-ready', '1');
  document.querySelectorAll('a.seek[data-t]').forEach(function (a) {
    a.addEventListener('click', function (e) {
      e.preventDefault();
      var t = parseFloat(a.getAttribute('data-t'));
      Promise.resolve(player.seek(Math.max(0, t - 0.5))).then(function () { player.play(); });
    });
  });
})();
