// stripe-fixtures.mjs FIXTURES DIR: the Stripe objects gwsim answered (gwsim --record DIR)
// carry the fields of Stripe's published example objects (tests/contracts/stripe/fixtures3.json,
// stripe/openapi's fixtures, as stripe-mock serves them). Per object type (the "object" member:
// payment_method, customer, payment_intent, refund, setup_intent, event, charge, ... wherever one
// appears in an answer, nested ones included), the set of member names must be the fixture's:
// a member the fixture has and gwsim lacks is "missing", one gwsim has and the fixture lacks is
// "extra"; a member both have with a non-null value must be of the fixture's JSON type (string,
// number, boolean, object, array). A few sub-objects are compared the same way (NESTED). Differences that are expected
// are listed in EXPECTED with their reason and reported as notes, not failures.
// Prints one line per object type, then 'stripe-fixtures: N objects, M failed'; exits 1 if any
// failed or no object was seen.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [fixPath, dir] = process.argv.slice(2);
if (!fixPath || !dir) {
    console.error('usage: node stripe-fixtures.mjs FIXTURES RECORD_DIR');
    process.exit(2);
}
const fixtures = JSON.parse(readFileSync(fixPath, 'utf8')).resources;

// Sub-objects whose members are compared too: closed structures, not free-form maps (metadata)
// or the fixtures' one-member stubs of polymorphic objects (last_payment_error, next_action).
const NESTED = {
    payment_method: ['billing_details', 'card'],
    customer: ['invoice_settings'],
    event: ['data', 'request'],
};

// 'type.member' (or 'type.sub.member') -> why gwsim may differ from the fixture there (none today:
// every difference the comparison found was fixed in gwsim).
const EXPECTED = {
};

const seen = new Map(); // type -> {n, missing:Set, extra:Set, types:Set, expected:Set}
const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
let objects = 0;
const keysDiff = (type, label, fixture, ours, s) => {
    for (const k of Object.keys(fixture)) {
        if (k in ours) continue;
        const id = `${label}.${k}`;
        if (EXPECTED[id]) s.expected.add(`${id} missing: ${EXPECTED[id]}`);
        else s.missing.add(id);
    }
    for (const k of Object.keys(ours)) {
        if (k in fixture) {
            const a = kind(fixture[k]), b = kind(ours[k]);
            if (a !== 'null' && b !== 'null' && a !== b) s.types.add(`${label}.${k} is ${b}, the fixture's ${a}`);
            continue;
        }
        const id = `${label}.${k}`;
        if (EXPECTED[id]) s.expected.add(`${id} extra: ${EXPECTED[id]}`);
        else s.extra.add(id);
    }
};
const visit = (v) => {
    if (Array.isArray(v)) { v.forEach(visit); return; }
    if (v === null || typeof v !== 'object') return;
    const type = typeof v.object === 'string' ? v.object : null;
    if (type && fixtures[type] && typeof v.id === 'string') {
        objects++;
        const s = seen.get(type) ?? { n: 0, missing: new Set(), extra: new Set(), types: new Set(), expected: new Set() };
        seen.set(type, s);
        s.n++;
        keysDiff(type, type, fixtures[type], v, s);
        for (const sub of NESTED[type] ?? []) {
            const f = fixtures[type][sub], o = v[sub];
            if (f && typeof f === 'object' && o && typeof o === 'object')
                keysDiff(type, `${type}.${sub}`, f, o, s);
        }
    }
    for (const x of Object.values(v)) visit(x);
};
for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    const x = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    if (x.api !== 'stripe' || x.response_body === '') continue;
    visit(JSON.parse(x.response_body));
}
let failed = 0;
for (const [type, s] of [...seen.entries()].sort()) {
    const bad = s.missing.size + s.extra.size + s.types.size > 0;
    if (bad) failed++;
    console.log(`${bad ? 'FAIL' : 'ok  '} ${type}: ${s.n} objects` +
        (s.missing.size ? `; missing: ${[...s.missing].join(', ')}` : '') +
        (s.extra.size ? `; extra: ${[...s.extra].join(', ')}` : '') +
        (s.types.size ? `; types: ${[...s.types].join(', ')}` : ''));
    for (const e of s.expected) console.log(`     expected: ${e}`);
}
console.log(`stripe-fixtures: ${objects} objects of ${seen.size} types, ${failed} types failed`);
process.exit(failed === 0 && objects > 0 ? 0 : 1);
