#!/usr/bin/env node
// compare.js IIN_JSON DOC - feeds sample BINs to braintree's credit-card-type (pinned in
// package.json) and to tokend's IIN table (IIN_JSON: the body of GET /v1/elements/iin.json,
// the table the card element uses), and fails on any difference that docs/iin-ranges.md
// (DOC) does not list. A difference is keyed `brand:TOKEND/BRAINTREE` (the sample's brand
// differs) or `lengths:BRAND` (same brand, different PAN lengths); the doc lists each key,
// in backquotes, in its "Differences from credit-card-type" table.
'use strict';
const fs = require('fs');
const creditCardType = require('credit-card-type');

const iin = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const doc = fs.readFileSync(process.argv[3], 'utf8');
const section = doc.split(/^## Differences from credit-card-type\s*$/m)[1];
if (section === undefined) throw new Error('docs/iin-ranges.md has no "Differences from credit-card-type"');
const listed = new Set();
for (const m of section.split(/^## /m)[0].matchAll(/^\| `([a-z]+:[a-z/-]+)` \|/gm))
  listed.add(m[1]);

// Our names for braintree's types; anything else is compared as is.
const NAME = { 'american-express': 'amex', 'diners-club': 'diners' };

function tokend(d) {
  let best = null;
  for (const r of iin.ranges) {
    if (r.prefix_len > d.length) continue;
    const p = parseInt(d.slice(0, r.prefix_len), 10);
    if (p < r.low || p > r.high) continue;
    if (best === null || r.prefix_len > best.prefix_len) best = r;
  }
  return best ? { brand: best.brand, lengths: best.lengths } : { brand: 'unknown', lengths: [] };
}

function braintree(d) {
  const t = creditCardType(d);
  if (t.length !== 1) return { brand: 'unknown', lengths: [] };
  return { brand: NAME[t[0].type] || t[0].type, lengths: t[0].lengths };
}

// Samples: both ends and the neighbours of every tokend row and every braintree pattern, plus
// every 1- and 2-digit prefix, each padded to 8 digits with 0s and with 9s.
const prefixes = new Set();
for (let i = 0; i < 100; i++) prefixes.add(String(i).padStart(i < 10 ? 1 : 2, '0'));
const add = (v, len) => {
  for (const x of [v - 1, v, v + 1])
    if (x >= 0 && String(x).length === len) prefixes.add(String(x));
};
for (const r of iin.ranges) {
  add(r.low, r.prefix_len);
  add(r.high, r.prefix_len);
}
for (const t of Object.values(creditCardType.types)) {
  for (const p of creditCardType.getTypeInfo(t).patterns) {
    const ends = Array.isArray(p) ? p : [p];
    for (const e of ends) add(e, String(e).length);
  }
}
const samples = new Set();
for (const p of prefixes)
  for (const fill of ['0', '9']) samples.add((p + fill.repeat(8)).slice(0, 8));
samples.add('00000000');

const unlisted = new Map();
const used = new Set();
let n = 0;
for (const s of [...samples].sort()) {
  n++;
  const a = tokend(s);
  const b = braintree(s);
  let key = null;
  if (a.brand !== b.brand) key = `brand:${a.brand}/${b.brand}`;
  else if (a.lengths.join(',') !== b.lengths.join(',')) key = `lengths:${a.brand}`;
  if (key === null) continue;
  if (listed.has(key)) used.add(key);
  else if (!unlisted.has(key)) unlisted.set(key, s);
}
for (const [key, s] of unlisted) console.log(`UNLISTED ${key} (e.g. BIN ${s})`);
for (const key of listed) if (!used.has(key)) console.log(`STALE ${key}: listed, no sample shows it`);
console.log(`${n} sample BINs, ${used.size} listed differences seen, ${unlisted.size} unlisted`);
process.exit(unlisted.size === 0 && used.size === listed.size ? 0 : 1);
