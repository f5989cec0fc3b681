/* tokend card element. Served by tokend; see docs/elements.md for the message protocol.
 * The checks mirror service/card.c with the same IIN table (embedded by the page as JSON);
 * the server stays the authority. No card data ever leaves this frame except in the
 * POST to tokend, and the parent only ever receives a token. */
(function () {
  'use strict';

  var form = document.getElementById('tokend-card');
  var iin = JSON.parse(document.getElementById('tokend-iin').textContent);
  var KEY = form.getAttribute('data-key');
  var ORIGIN = form.getAttribute('data-origin');
  var fields = {
    number: document.getElementById('number'),
    exp: document.getElementById('exp'),
    cvc: document.getElementById('cvc'),
    name: document.getElementById('name')
  };
  var brandEl = document.getElementById('number-brand');
  var statusEl = document.getElementById('status');
  var touched = { number: false, exp: false, cvc: false, name: false };
  var busy = false;

  var BRAND_LABEL = {
    visa: 'Visa', mastercard: 'Mastercard', amex: 'American Express', discover: 'Discover',
    jcb: 'JCB', diners: 'Diners Club', unionpay: 'UnionPay', maestro: 'Maestro', mir: 'Mir',
    elo: 'Elo', hiper: 'Hiper', hipercard: 'Hipercard', troy: 'Troy', verve: 'Verve',
    naranja: 'Naranja'
  };

  /* Stable codes: the server's (include/tokend/card.h) plus incomplete_* for empty fields. */
  function message(code, brand) {
    switch (code) {
      case 'incomplete_number': return 'Enter your card number.';
      case 'invalid_number': return 'Your card number is incomplete or not a card number.';
      case 'luhn_check_failed': return 'Your card number is invalid.';
      case 'unsupported_length_for_brand': return 'Your card number has the wrong length for this card brand.';
      case 'incomplete_expiry': return 'Enter the expiry date as MM / YY.';
      case 'invalid_expiry_month': return 'The expiry month is invalid.';
      case 'invalid_expiry_year': return 'The expiry year is invalid.';
      case 'expired_card': return 'Your card has expired.';
      case 'incomplete_cvc': return 'Enter the security code.';
      case 'invalid_cvc':
        return 'The security code must be ' + cvcLength(brand) + ' digits.';
      case 'invalid_name': return 'The name contains characters that are not allowed.';
      default: return 'Your card could not be saved. Check the details and try again.';
    }
  }

  /* ---- the checks (service/card.c) ---------------------------------------------------- */

  function digitsOf(s) { return s.replace(/[ -]/g, ''); }

  function luhnOk(d) {
    var sum = 0;
    for (var i = 0; i < d.length; i++) {
      var v = d.charCodeAt(d.length - 1 - i) - 48;
      if (i % 2 === 1) { v *= 2; if (v > 9) v -= 9; }
      sum += v;
    }
    return sum % 10 === 0;
  }

  /* The row with the longest prefix matching d (card.c iin_match). */
  function iinMatch(d) {
    var best = null;
    for (var i = 0; i < iin.ranges.length; i++) {
      var r = iin.ranges[i];
      if (r.prefix_len === 0 || r.prefix_len > d.length) continue;
      var p = parseInt(d.slice(0, r.prefix_len), 10);
      if (p < r.low || p > r.high) continue;
      if (best === null || r.prefix_len > best.prefix_len) best = r;
    }
    return best;
  }

  function brandOf(d) {
    var m = /^[0-9]+$/.test(d) ? iinMatch(d.slice(0, 8)) : null;
    return m ? m.brand : 'unknown';
  }

  function cvcLength(brand) { return brand === 'amex' ? iin.cvc_len_amex : iin.cvc_len; }

  function maxLength(d) {
    var m = iinMatch(d.slice(0, 8));
    return m ? Math.max.apply(null, m.lengths) : iin.pan_max;
  }

  function checkNumber(raw) {
    var d = digitsOf(raw);
    if (d.length === 0) return 'incomplete_number';
    if (!/^[0-9]+$/.test(d) || d.length < iin.pan_min || d.length > iin.pan_max) return 'invalid_number';
    if (!luhnOk(d)) return 'luhn_check_failed';
    var m = iinMatch(d);
    if (!m) return 'invalid_number'; /* first digits no network issues from */
    if (m.lengths.indexOf(d.length) < 0) return 'unsupported_length_for_brand';
    return null;
  }

  /* "MM / YY", "MM/YYYY", "MMYY" -> {month, year} or null. */
  function parseExp(raw) {
    var d = raw.replace(/[^0-9]/g, '');
    if (d.length !== 4 && d.length !== 6) return null;
    return { month: parseInt(d.slice(0, 2), 10), year: parseInt(d.slice(2), 10) };
  }

  function checkExp(raw) {
    if (raw.replace(/[^0-9]/g, '').length === 0) return 'incomplete_expiry';
    var e = parseExp(raw);
    if (!e) return 'incomplete_expiry';
    if (e.month < 1 || e.month > 12) return 'invalid_expiry_month';
    var year = e.year < 100 ? 2000 + e.year : e.year;
    if (year < 1000 || year > 9999) return 'invalid_expiry_year';
    var now = new Date();
    var ny = now.getFullYear(), nm = now.getMonth() + 1;
    if (year < ny || (year === ny && e.month < nm)) return 'expired_card';
    if (year > ny + iin.expiry_years_max) return 'invalid_expiry_year';
    return null;
  }

  function checkCvc(raw, brand) {
    if (raw.length === 0) return 'incomplete_cvc';
    if (!/^[0-9]+$/.test(raw) || raw.length !== cvcLength(brand)) return 'invalid_cvc';
    return null;
  }

  function checkName(raw) {
    if (new TextEncoder().encode(raw).length > iin.name_max) return 'invalid_name';
    /* C0, DEL, C1, line/paragraph separators, bidi overrides and isolates (card.c) */
    if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(raw)) return 'invalid_name';
    return null;
  }

  function currentBrand() { return brandOf(digitsOf(fields.number.value)); }

  function errors() {
    var brand = currentBrand();
    return {
      number: checkNumber(fields.number.value),
      exp: checkExp(fields.exp.value),
      cvc: checkCvc(fields.cvc.value, brand),
      name: checkName(fields.name.value)
    };
  }

  /* ---- display ------------------------------------------------------------------------- */

  function showError(field, code) {
    var el = document.getElementById(field + '-error');
    var text = code ? message(code, currentBrand()) : '';
    if (el.textContent !== text) el.textContent = text;
    el.setAttribute('data-code', code || '');
    fields[field].setAttribute('aria-invalid', code ? 'true' : 'false');
  }

  function formatNumber() {
    var el = fields.number;
    var atEnd = el.selectionStart === el.value.length;
    var d = el.value.replace(/[^0-9]/g, '').slice(0, iin.pan_max);
    d = d.slice(0, maxLength(d));
    var brand = brandOf(d);
    var groups = brand === 'amex' ? [4, 6, 5] : brand === 'diners' && d.length === 14 ? [4, 6, 4] : null;
    var out = '';
    if (groups) {
      var at = 0;
      for (var g = 0; g < groups.length && at < d.length; g++) {
        out += (g ? ' ' : '') + d.slice(at, at + groups[g]);
        at += groups[g];
      }
      if (at < d.length) out += ' ' + d.slice(at);
    } else {
      out = d.replace(/(\d{4})(?=\d)/g, '$1 ');
    }
    if (out !== el.value) {
      el.value = out;
      if (atEnd) el.setSelectionRange(out.length, out.length);
    }
    brandEl.setAttribute('data-brand', brand);
    brandEl.textContent = brand === 'unknown' ? '' : BRAND_LABEL[brand] || brand;
    fields.cvc.setAttribute('maxlength', String(cvcLength(brand)));
  }

  function formatExp(ev) {
    var el = fields.exp;
    var d = el.value.replace(/[^0-9]/g, '').slice(0, 6);
    if (d.length === 1 && d > '1') d = '0' + d; /* "4" means April */
    var deleting = ev && ev.inputType && ev.inputType.indexOf('delete') === 0;
    var out = d.length > 2 || (d.length === 2 && !deleting) ? d.slice(0, 2) + ' / ' + d.slice(2) : d;
    if (out !== el.value) el.value = out;
  }

  function formatCvc() {
    var el = fields.cvc;
    var d = el.value.replace(/[^0-9]/g, '').slice(0, iin.cvc_len_amex);
    if (d !== el.value) el.value = d;
  }

  /* ---- the parent ---------------------------------------------------------------------- */

  function tell(msg) {
    /* targetOrigin is the merchant origin tokend checked against the key: the browser drops
     * the message if the parent is anyone else. Never '*'. */
    if (window.parent !== window) window.parent.postMessage(msg, ORIGIN);
  }

  function firstError(errs) {
    var order = ['number', 'exp', 'cvc', 'name'];
    for (var i = 0; i < order.length; i++)
      if (errs[order[i]]) return { field: order[i], code: errs[order[i]], message: message(errs[order[i]], currentBrand()) };
    return null;
  }

  var lastChange = '';
  function reportChange() {
    var errs = errors();
    var shown = null;
    Object.keys(touched).forEach(function (f) {
      if (touched[f] && errs[f] && !shown) shown = { field: f, code: errs[f], message: message(errs[f], currentBrand()) };
    });
    var msg = { type: 'tokend:change', complete: firstError(errs) === null, brand: currentBrand(), error: shown };
    var s = JSON.stringify(msg);
    if (s !== lastChange) { lastChange = s; tell(msg); }
  }

  function onInput(field, ev) {
    if (field === 'number') formatNumber();
    if (field === 'exp') formatExp(ev);
    if (field === 'cvc') formatCvc();
    var errs = errors();
    /* clear an error as soon as the field is fixed; show new ones only on blur or submit */
    if (!errs[field]) showError(field, null);
    if (field === 'number' && touched.cvc) showError('cvc', errs.cvc);
    statusEl.textContent = '';
    reportChange();
  }

  function onBlur(field) {
    var el = fields[field];
    if (el.value.length === 0 && field !== 'name') return;
    touched[field] = true;
    showError(field, errors()[field]);
    reportChange();
  }

  var PARAM_FIELD = { 'card[number]': 'number', 'card[exp_month]': 'exp', 'card[exp_year]': 'exp', 'card[cvc]': 'cvc', 'card[name]': 'name' };

  function submit() {
    if (busy || form.getAttribute('data-disabled') === 'true') return;
    Object.keys(touched).forEach(function (f) { touched[f] = true; });
    var errs = errors();
    Object.keys(errs).forEach(function (f) { showError(f, errs[f]); });
    var first = firstError(errs);
    reportChange();
    if (first) {
      fields[first.field].focus();
      tell({ type: 'tokend:error', error: first });
      return;
    }
    var exp = parseExp(fields.exp.value);
    var card = {
      number: digitsOf(fields.number.value),
      exp_month: exp.month,
      exp_year: exp.year < 100 ? 2000 + exp.year : exp.year,
      cvc: fields.cvc.value
    };
    if (fields.name.value.length > 0) card.name = fields.name.value;
    busy = true;
    form.setAttribute('aria-busy', 'true');
    statusEl.textContent = 'Saving your card…';
    fetch('/v1/tokens', {
      method: 'POST',
      credentials: 'omit',
      cache: 'no-store',
      /* same-origin: the browser then sends Origin (tokend's own); with no-referrer it would
       * send "Origin: null" and tokend could not tell the element from a sandboxed page. */
      referrerPolicy: 'same-origin',
      headers: {
        'authorization': 'Bearer ' + KEY,
        'content-type': 'application/json',
        'tokend-parent-origin': ORIGIN
      },
      body: JSON.stringify({ card: card })
    }).then(function (res) {
      return res.json().then(function (body) { return { status: res.status, body: body }; },
        function () { return { status: res.status, body: {} }; });
    }).then(function (r) {
      busy = false;
      form.removeAttribute('aria-busy');
      if (r.status === 201 || r.status === 200) {
        var t = r.body;
        statusEl.textContent = 'Card saved.';
        fields.number.value = '';
        fields.cvc.value = '';
        tell({ type: 'tokend:token', token: { id: t.id, brand: t.brand, last4: t.last4, exp_month: t.exp_month, exp_year: t.exp_year } });
        return;
      }
      var code = r.body.code || 'card_error';
      var field = PARAM_FIELD[r.body.param];
      if (field) showError(field, code);
      statusEl.textContent = field ? '' : message(code);
      tell({ type: 'tokend:error', error: { field: field || null, code: code, message: message(code, currentBrand()) } });
    }, function () {
      busy = false;
      form.removeAttribute('aria-busy');
      statusEl.textContent = 'The card service cannot be reached. Try again.';
      tell({ type: 'tokend:error', error: { field: null, code: 'network_error', message: statusEl.textContent } });
    });
  }

  /* ---- wiring -------------------------------------------------------------------------- */

  /* Defence in depth behind CSP frame-ancestors: where the browser names the parent's origin
   * and it is not the one this page was made for, the form stays disabled. */
  var ancestors = window.location.ancestorOrigins;
  var parentOrigin = ancestors && ancestors.length > 0 ? ancestors[0] : null;
  if (window.parent === window || (parentOrigin && parentOrigin !== 'null' && parentOrigin !== ORIGIN)) {
    form.setAttribute('data-disabled', 'true');
    Object.keys(fields).forEach(function (f) { fields[f].disabled = true; });
    statusEl.textContent = 'This card form only works inside the page it was made for.';
    return;
  }

  Object.keys(fields).forEach(function (f) {
    fields[f].addEventListener('input', function (ev) { onInput(f, ev); });
    fields[f].addEventListener('blur', function () { onBlur(f); });
  });
  form.addEventListener('submit', function (ev) { ev.preventDefault(); submit(); });

  window.addEventListener('message', function (ev) {
    /* only the page this element was made for may drive it */
    if (ev.source !== window.parent || ev.origin !== ORIGIN) return;
    var d = ev.data;
    if (!d || typeof d !== 'object') return;
    if (d.type === 'tokend:submit') submit();
    else if (d.type === 'tokend:focus') fields.number.focus();
  });

  tell({ type: 'tokend:ready' });
  reportChange();
})();
