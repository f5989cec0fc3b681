// The merchant side of the card element protocol (docs/elements.md): build the iframe URL,
// listen to the element, trigger submit, and charge the token through our own server.
(function () {
  'use strict';
  const cfg = { tokend: document.body.dataset.tokend, pk: document.body.dataset.pk };
  const frame = document.getElementById('card');
  const pay = document.getElementById('pay');
  const tokenEl = document.getElementById('token');
  const result = document.getElementById('result');
  window.__tokend = { changes: [], errors: [], ready: false };

  frame.src = cfg.tokend + '/v1/elements/card?key=' + encodeURIComponent(cfg.pk) +
    '&origin=' + encodeURIComponent(window.location.origin);

  window.addEventListener('message', function (ev) {
    // only the element we embedded, from tokend's origin
    if (ev.origin !== cfg.tokend || ev.source !== frame.contentWindow) return;
    const m = ev.data || {};
    if (m.type === 'tokend:ready') window.__tokend.ready = true;
    if (m.type === 'tokend:change') window.__tokend.changes.push(m);
    if (m.type === 'tokend:error') window.__tokend.errors.push(m.error);
    if (m.type === 'tokend:token') onToken(m.token);
  });

  pay.addEventListener('click', function () {
    frame.contentWindow.postMessage({ type: 'tokend:submit' }, cfg.tokend);
  });

  async function onToken(token) {
    tokenEl.textContent = token.id + ' (' + token.brand + ' •••• ' + token.last4 + ', ' +
      token.exp_month + '/' + token.exp_year + ')';
    tokenEl.setAttribute('data-token', token.id);
    result.textContent = 'charging…';
    try {
      const res = await fetch('/api/charge', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: token.id }),
      });
      const j = await res.json();
      const ch = j.charge || {};
      result.textContent = res.ok ? (ch.id + ': ' + ch.status + ' ' + ch.amount + ' ' + ch.currency)
        : ('failed: ' + (j.tokend_status || '') + ' ' + (ch.code || j.error || ''));
      result.setAttribute('data-status', res.ok ? String(ch.status) : 'failed');
      result.setAttribute('data-tokend-status', String(j.tokend_status || ''));
    } catch (e) {
      result.textContent = 'failed: ' + e.message;
      result.setAttribute('data-status', 'failed');
    }
  }
})();
