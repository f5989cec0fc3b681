// adyen.mjs SPEC DIR: checks the Adyen exchanges gwsim recorded (gwsim --record DIR, one JSON
// file per exchange; docs/gwsim.md) against Adyen's published OpenAPI 3.1 document for Checkout
// v71 (tests/contracts/adyen/CheckoutService-v71.json): every request the adapter sent must
// validate against the request schema of its operation (body, path and query parameters), and
// every answer gwsim gave against the response schema of its operation and status (JSON Schema
// 2020-12, ajv). Prints one line per operation seen, then one line per failure with the
// schema error, then 'adyen: N exchanges, M failed'; exits 1 if any failed or none was seen.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [specPath, dir] = process.argv.slice(2);
if (!specPath || !dir) {
    console.error('usage: node adyen.mjs SPEC RECORD_DIR');
    process.exit(2);
}
const spec = JSON.parse(readFileSync(specPath, 'utf8'));
const base = new URL(spec.servers[0].url).pathname.replace(/\/$/, ''); // "/v71"

// The component schemas become one schema document with $defs, so ajv sees plain JSON Schema.
const retarget = (v) => {
    if (Array.isArray(v)) return v.map(retarget);
    if (v === null || typeof v !== 'object') return v;
    const o = {};
    for (const [k, x] of Object.entries(v)) {
        if (k === '$ref' && typeof x === 'string' && x.startsWith('#/components/schemas/'))
            o[k] = 'components#/$defs/' + x.slice('#/components/schemas/'.length);
        else o[k] = retarget(x);
    }
    return o;
};
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
ajv.addSchema({ $id: 'components', $defs: retarget(spec.components?.schemas ?? {}) });
const compiled = new Map();
const validator = (schema) => {
    const key = JSON.stringify(schema);
    if (!compiled.has(key)) compiled.set(key, ajv.compile(retarget(schema)));
    return compiled.get(key);
};
const resolve = (obj) => {
    while (obj && obj.$ref) obj = obj.$ref.replace(/^#\//, '').split('/').reduce((o, k) => o?.[k], spec);
    return obj;
};

// The operation of a concrete path: literal templates win over ones with parameters.
const templates = Object.keys(spec.paths).map((t) => ({
    t,
    params: [...t.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]),
    re: new RegExp('^' + t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '([^/]+)') + '$'),
    literal: !t.includes('{'),
})).sort((a, b) => Number(b.literal) - Number(a.literal));
const findOp = (method, path) => {
    for (const tp of templates) {
        const m = tp.re.exec(path);
        const op = m && spec.paths[tp.t][method.toLowerCase()];
        if (op) {
            const values = Object.fromEntries(tp.params.map((p, i) => [p, decodeURIComponent(m[i + 1])]));
            return { template: tp.t, op, pathItem: spec.paths[tp.t], values };
        }
    }
    return null;
};

// A readable ajv error; for a oneOf, the branch that comes closest (fewest errors) is named,
// since "must match exactly one schema in oneOf" alone says nothing.
const explain = (errors) => errors.slice(0, 6).map((e) => `${e.instancePath || '/'} ${e.message}` +
    (e.params?.missingProperty ? ` (${e.params.missingProperty})` : '') +
    (e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : '') +
    (e.params?.allowedValues ? ` (${e.params.allowedValues.slice(0, 8).join(', ')})` : '')).join('; ');
const check = (schema, value) => {
    const v = validator(schema);
    return v(value) ? null : explain(v.errors);
};

// Error statuses the document does not declare for an operation (it declares none for
// /storedPaymentMethods, and 429 nowhere) are checked against ServiceError, the error body
// every other Checkout operation declares, and noted as such.
const SERVICE_ERROR = { $ref: '#/components/schemas/ServiceError' };

const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const perOp = new Map();
let n = 0;
let failed = 0;
const failures = [];
for (const f of files) {
    const x = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    if (x.api !== 'adyen') continue;
    n++;
    const path = x.path.startsWith(base + '/') ? x.path.slice(base.length) : null;
    const found = path && findOp(x.method, path);
    const label = found ? `${x.method} ${found.template}` : `${x.method} ${x.path}`;
    const s = perOp.get(label) ?? { n: 0, statuses: new Map(), failed: 0, notes: new Set() };
    perOp.set(label, s);
    s.n++;
    s.statuses.set(x.status, (s.statuses.get(x.status) ?? 0) + 1);
    let counted = false;
    const bad = (why) => {
        if (!counted) { s.failed++; failed++; counted = true; }
        failures.push(`FAIL ${label} ${x.status} (${f}): ${why}`);
    };
    if (!found) { bad(`no such operation in the document (server base ${base})`); continue; }
    const { op, pathItem, values } = found;
    // parameters: path and query, as declared (operation over path item)
    const params = [...(pathItem.parameters ?? []), ...(op.parameters ?? [])].map(resolve);
    const query = new URLSearchParams(x.query ?? '');
    for (const p of params) {
        if (p.in === 'path' || p.in === 'query') {
            const present = p.in === 'path' ? p.name in values : query.has(p.name);
            if (!present) {
                if (p.required) bad(`request: ${p.in} parameter ${p.name} is required`);
                continue;
            }
            const err = check(p.schema ?? {}, p.in === 'path' ? values[p.name] : query.get(p.name));
            if (err) bad(`request: ${p.in} parameter ${p.name}: ${err}`);
        }
    }
    for (const q of query.keys())
        if (!params.some((p) => p.in === 'query' && p.name === q)) bad(`request: query parameter ${q} is not declared`);
    // the request body
    const rb = resolve(op.requestBody);
    const rct = (x.request_content_type ?? '').split(';')[0].trim().toLowerCase();
    if (rb) {
        const media = rb.content?.[rct];
        if (x.request_body === '') {
            if (rb.required) bad('request: a body is required');
        } else if (!media) {
            bad(`request: media type ${rct || '(none)'} not declared (${Object.keys(rb.content ?? {}).join(', ')})`);
        } else {
            let body;
            try { body = JSON.parse(x.request_body); } catch (e) { bad(`request: not JSON: ${e.message}`); }
            if (body !== undefined && media.schema) {
                const err = check(media.schema, body);
                if (err) bad(`request: ${err}`);
            }
        }
    } else if (x.request_body !== '') {
        bad('request: a body where the document declares none');
    }
    // the response
    let res = resolve(op.responses?.[String(x.status)] ?? op.responses?.[`${String(x.status)[0]}XX`]);
    if (!res && x.status >= 400) {
        res = { content: { 'application/json': { schema: SERVICE_ERROR } } };
        s.notes.add(`${x.status} not declared for this operation: checked against ServiceError`);
    }
    if (!res) { bad(`response: status ${x.status} not declared (${Object.keys(op.responses ?? {}).join(', ')})`); continue; }
    const content = res.content ?? {};
    const mt = (x.response_content_type ?? '').split(';')[0].trim().toLowerCase();
    if (Object.keys(content).length === 0) {
        if (x.response_body !== '') bad(`response: a body where the document declares none (${mt})`);
        continue;
    }
    const media = content[mt];
    if (!media) { bad(`response: media type ${mt || '(none)'} not declared (${Object.keys(content).join(', ')})`); continue; }
    let body;
    try { body = JSON.parse(x.response_body); } catch (e) { bad(`response: not JSON: ${e.message}`); continue; }
    if (media.schema) {
        const err = check(media.schema, body);
        if (err) bad(`response: ${err}`);
    }
}
for (const [label, s] of [...perOp.entries()].sort()) {
    const st = [...s.statuses.entries()].sort().map(([k, v]) => `${k}x${v}`).join(' ');
    console.log(`${s.failed === 0 ? 'ok  ' : 'FAIL'} ${label}: ${s.n} exchanges (${st})` +
        (s.notes.size ? `; ${[...s.notes].join('; ')}` : ''));
}
for (const l of failures) console.log(l);
console.log(`adyen: ${n} exchanges, ${failed} failed`);
process.exit(failed === 0 && n > 0 ? 0 : 1);
