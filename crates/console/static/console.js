// Gatehouse console: small progressive enhancements; every page works without it.
(function () {
  'use strict';
  // Show times in the reader's time zone; the UTC text stays as the tooltip.
  document.querySelectorAll('time[datetime]').forEach(function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d.getTime())) {
      t.title = t.textContent;
      t.textContent = d.toLocaleString(undefined, {
        year: 'numeric', month: 'short', day: 'numeric',
        hour: '2-digit', minute: '2-digit', second: '2-digit'
      });
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
