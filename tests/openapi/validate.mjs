// validate.mjs SPEC CAPTURES: checks responses captured from a running tokend against the
// OpenAPI document. CAPTURES is NDJSON, one {path (the spec's template), method, status,
// content_type, body (text)} per line. Each response must be declared by its operation
// (status, media type), and a JSON body must validate against the declared schema (JSON
// Schema 2020-12, as OpenAPI 3.1 uses; ajv). Prints one line per failure, then
// 'validate: N responses, M failed'; exits 1 if any failed.
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [specPath, capsPath] = process.argv.slice(2);
if (!specPath || !capsPath) {
    console.error('usage: node validate.mjs SPEC CAPTURES');
    process.exit(2);
}
const spec = JSON.parse(readFileSync(specPath, 'utf8'));

// The component schemas become one schema document with $defs, and the spec's refs point there,
// so ajv sees plain JSON Schema.
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

const resolve = (obj) => { // a response or media object may be a $ref into components
    while (obj && obj.$ref) {
        const parts = obj.$ref.replace(/^#\//, '').split('/');
        obj = parts.reduce((o, k) => o?.[k], spec);
    }
    return obj;
};

const lines = readFileSync(capsPath, 'utf8').split('\n').filter((l) => l.trim() !== '');
let failed = 0;
const bad = (c, why) => {
    failed++;
    console.log(`FAIL ${c.method} ${c.path} ${c.status}: ${why}`);
};
for (const line of lines) {
    const c = JSON.parse(line);
    const op = spec.paths?.[c.path]?.[c.method.toLowerCase()];
    if (!op) { bad(c, 'no such operation in the spec'); continue; }
    const res = resolve(op.responses?.[String(c.status)] ?? op.responses?.[`${String(c.status)[0]}XX`]);
    if (!res) { bad(c, 'status not declared'); continue; }
    const content = res.content ?? {};
    const mt = (c.content_type || '').split(';')[0].trim().toLowerCase();
    if (Object.keys(content).length === 0) {
        if (c.body !== '') bad(c, `a body where the spec declares none (${mt})`);
        continue;
    }
    const media = content[mt];
    if (!media) { bad(c, `media type ${mt || '(none)'} not declared (${Object.keys(content).join(', ')})`); continue; }
    if (!media.schema) continue;
    let values;
    try {
        if (mt === 'application/x-ndjson')
            values = c.body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
        else if (mt.endsWith('json'))
            values = [JSON.parse(c.body)];
        else
            values = [c.body];
    } catch (e) {
        bad(c, `body is not ${mt}: ${e.message}`);
        continue;
    }
    const validate = ajv.compile(retarget(media.schema));
    for (const v of values) {
        if (!validate(v)) {
            bad(c, validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}` +
                (e.params?.missingProperty ? ` (${e.params.missingProperty})` : '') +
                (e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : '')).join('; '));
            break;
        }
    }
}
console.log(`validate: ${lines.length} responses, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
