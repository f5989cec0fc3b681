// demo/server.mjs - a tiny "invoicing app" that takes card payments through tokend's card
// element: its pages embed the element, receive a token, and its server charges the token
// with a secret key. Card numbers never reach this process; its request log proves it.
//
// Environment: DEMO_PORT (the shop), EVIL_PORT (another origin, for the negative tests),
// TOKEND_URL (http://127.0.0.1:PORT, as the browser reaches it), TOKEND_PK (publishable key,
// its origin http://127.0.0.1:DEMO_PORT), TOKEND_SK (secret key, charges:write),
// DEMO_LOG (request log file: method, path and body of every request this server gets).
// No npm dependencies: node's http only.
import http from 'node:http';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`demo: ${name} is not set`); process.exit(2); }
  return v;
};
const DEMO_PORT = Number(env('DEMO_PORT'));
const EVIL_PORT = Number(env('EVIL_PORT'));
const TOKEND_URL = env('TOKEND_URL');
const PK = env('TOKEND_PK');
const SK = env('TOKEND_SK');
const LOG = env('DEMO_LOG');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOP_ORIGIN = `http://127.0.0.1:${DEMO_PORT}`;

const logLine = (port, req, body) =>
  fs.appendFileSync(LOG, `${new Date().toISOString()} :${port} ${req.method} ${req.url} ${body}\n`);

const readBody = (req) => new Promise((resolve, reject) => {
  const chunks = [];
  let n = 0;
  req.on('data', (c) => { n += c.length; if (n > 65536) { req.destroy(); reject(new Error('too large')); } else chunks.push(c); });
  req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  req.on('error', reject);
});

const send = (res, status, type, body, headers = {}) => {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
};

const html = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const page = (name, vars) => fs.readFileSync(path.join(HERE, name), 'utf8')
  .replace(/\{\{(\w+)\}\}/g, (_, k) => html(vars[k] ?? ''));

// POST /v1/charges on tokend with the secret key (server to server: no Origin header).
function charge(token) {
  const body = JSON.stringify({ token, amount: 1999, currency: 'usd', capture: true, description: 'Invoice INV-1001' });
  const u = new URL('/v1/charges', TOKEND_URL);
  return new Promise((resolve, reject) => {
    const req = http.request(u, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${SK}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'idempotency-key': randomUUID(),
      },
      timeout: 10000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { json = { raw: text.slice(0, 500) }; }
        resolve({ status: res.statusCode, body: json });
      });
    });
    req.on('timeout', () => req.destroy(new Error('tokend timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

const shop = http.createServer(async (req, res) => {
  let body = '';
  try { body = await readBody(req); } catch { return send(res, 413, 'text/plain', 'too large'); }
  logLine(DEMO_PORT, req, body);
  const url = new URL(req.url, SHOP_ORIGIN);
  if (req.method === 'GET' && url.pathname === '/') {
    return send(res, 200, 'text/html; charset=utf-8',
      page('checkout.html', { tokend: TOKEND_URL, pk: PK, evil: `http://127.0.0.1:${EVIL_PORT}` }));
  }
  if (req.method === 'GET' && url.pathname === '/checkout.js') {
    return send(res, 200, 'text/javascript; charset=utf-8', fs.readFileSync(path.join(HERE, 'checkout.js')));
  }
  if (req.method === 'POST' && url.pathname === '/api/charge') {
    let token;
    try { token = JSON.parse(body).token; } catch { token = null; }
    if (typeof token !== 'string' || !/^tok_[0-9A-Za-z]+$/.test(token)) {
      return send(res, 400, 'application/json', JSON.stringify({ error: 'send {"token": "tok_..."}' }));
    }
    try {
      const r = await charge(token);
      return send(res, r.status >= 200 && r.status < 300 ? 200 : 502, 'application/json',
        JSON.stringify({ tokend_status: r.status, charge: r.body }));
    } catch (e) {
      return send(res, 502, 'application/json', JSON.stringify({ error: String(e.message) }));
    }
  }
  send(res, 404, 'text/plain', 'not found');
});

// Another origin: a page that listens to every message it gets, and one that tries to frame
// the element (for the frame-ancestors and postMessage tests).
const evil = http.createServer(async (req, res) => {
  let body = '';
  try { body = await readBody(req); } catch { return send(res, 413, 'text/plain', 'too large'); }
  logLine(EVIL_PORT, req, body);
  const url = new URL(req.url, `http://127.0.0.1:${EVIL_PORT}`);
  if (req.method === 'GET' && url.pathname === '/listener.html') {
    return send(res, 200, 'text/html; charset=utf-8', page('listener.html', {}));
  }
  if (req.method === 'GET' && url.pathname === '/frame.html') {
    const claimed = url.searchParams.get('origin') || SHOP_ORIGIN;
    const src = `${TOKEND_URL}/v1/elements/card?key=${encodeURIComponent(PK)}&origin=${encodeURIComponent(claimed)}`;
    return send(res, 200, 'text/html; charset=utf-8', page('evil-frame.html', {
      src, tokend: TOKEND_URL, referrerpolicy: url.searchParams.get('rp') || 'strict-origin-when-cross-origin',
    }));
  }
  send(res, 404, 'text/plain', 'not found');
});

shop.listen(DEMO_PORT, '127.0.0.1', () => console.log(`demo: shop on ${SHOP_ORIGIN}`));
evil.listen(EVIL_PORT, '127.0.0.1', () => console.log(`demo: other origin on http://127.0.0.1:${EVIL_PORT}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { shop.close(); evil.close(); process.exit(0); });
