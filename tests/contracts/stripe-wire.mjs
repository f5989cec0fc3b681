// stripe-wire.mjs: tokend's Stripe adapter and the official Stripe library (stripe-node, the
// version pinned in package-lock.json) do the same operations against one gwsim, which records
// every exchange (gwsim --record DIR). For each operation:
//   - the form parameters the adapter put on the wire (build/gwcall drives it through
//     tok_httpc, as tokend does) equal those stripe-node put there: decoded names and values,
//     with object ids replaced by their kind and the differences in EXPECTED applied;
//   - method, path (ids replaced) and Stripe-Version agree, and both send an Idempotency-Key;
//   - stripe-node parses every answer gwsim gives: the resource it returns is the recorded
//     answer, member for member, with the expected "object"; a card decline is thrown as a
//     StripeCardError carrying code, decline_code and the PaymentIntent.
// stripe-node reaches gwsim through its host/port/protocol settings; gwsim's CA comes from
// NODE_EXTRA_CA_CERTS (set by the caller). Prints one line per operation and one per
// difference, then 'stripe-wire: N operations, M failed'; exits 1 if any failed.
//
// usage: node stripe-wire.mjs --port P --dir RECORD_DIR --gwcall BUILD/gwcall --ca CRT
//        (the Stripe secret key in GWCALL_API_KEY, as for gwcall)
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import Stripe from 'stripe';

const { values: opt } = parseArgs({
    options: { port: { type: 'string' }, dir: { type: 'string' }, gwcall: { type: 'string' },
        ca: { type: 'string' } },
});
const key = process.env.GWCALL_API_KEY;
if (!opt.port || !opt.dir || !opt.gwcall || !opt.ca || !key) {
    console.error('usage: GWCALL_API_KEY=sk_test_... node stripe-wire.mjs --port P --dir DIR --gwcall GWCALL --ca CRT');
    process.exit(2);
}
// STRIPE_WIRE_SELFTEST=1: stripe-node adds a parameter the adapter does not send, so the test
// can show that a difference on the wire fails the comparison.
const SELFTEST = process.env.STRIPE_WIRE_SELFTEST === '1' ? { description: 'selftest' } : {};
const API_VERSION = '2024-06-20'; // the adapter's pinned Stripe-Version (gateway_wire.h)
const stripe = new Stripe(key, {
    apiVersion: API_VERSION,
    host: 'localhost',
    port: Number(opt.port),
    protocol: 'https',
    maxNetworkRetries: 0,
    telemetry: false,
});

// Test cards, built here (no card number sits in a file as one string).
const CARD_OK = '4242'.repeat(4);
const CARD_DECLINED = '4000' + '0000'.repeat(2) + '0002';
const YEAR = new Date().getUTCFullYear() + 1;

// Differences between the two clients that are expected, applied to both sides before the
// comparison. Each says why it does not matter to Stripe.
const EXPECTED = [
    ['array index notation: stripe-node sends payment_method_types[0]=card, the adapter '
        + 'payment_method_types[]=card; Stripe reads both as the array ["card"]',
    (k) => k.replace(/\[\d+\]/g, '[]')],
];
const normKey = (k) => EXPECTED.reduce((x, [, f]) => f(x), k);
const ID = /^(pm|cus|pi|re|ch|seti|req)_[0-9A-Za-z]+$/;
const normVal = (v) => (ID.test(v) ? `<${v.split('_')[0]}>` : v);
const normPath = (p) => p.split('/').map(normVal).join('/');

let seq = readdirSync(opt.dir).filter((f) => f.endsWith('.json')).length;
const newRecords = () => {
    const files = readdirSync(opt.dir).filter((f) => f.endsWith('.json')).sort();
    const out = files.slice(seq).map((f) => JSON.parse(readFileSync(join(opt.dir, f), 'utf8')));
    seq = files.length;
    return out;
};
const gwcall = (args) => {
    const out = execFileSync(opt.gwcall, ['--kind', 'stripe', '--base-url', `https://localhost:${opt.port}`,
        '--ca-file', opt.ca, '--timeout-ms', '5000', ...args], { env: process.env, encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').pop());
};
let idem = 0;
const io = () => ({ idempotencyKey: `stripe_node_contract_${process.pid}_${++idem}` });

let failed = 0;
let ops = 0;
const report = (name, problems) => {
    ops++;
    if (problems.length) failed++;
    console.log(`${problems.length ? 'FAIL' : 'ok  '} ${name}`);
    for (const p of problems) console.log(`     ${p}`);
};
const params = (r) => [...new URLSearchParams(r.request_body)].map(([k, v]) => `${normKey(k)}=${normVal(v)}`).sort();

// The same exchanges, in order, from both clients.
const compareWire = (ours, theirs, problems) => {
    if (ours.length !== theirs.length) {
        problems.push(`the adapter made ${ours.length} requests, stripe-node ${theirs.length}: ` +
            `${ours.map((r) => r.path).join(' ')} | ${theirs.map((r) => r.path).join(' ')}`);
        return;
    }
    ours.forEach((a, i) => {
        const b = theirs[i];
        const where = `${a.method} ${normPath(a.path)}`;
        if (a.method !== b.method || normPath(a.path) !== normPath(b.path))
            problems.push(`request ${i + 1}: adapter ${where}, stripe-node ${b.method} ${normPath(b.path)}`);
        if (a.stripe_version !== b.stripe_version)
            problems.push(`${where}: Stripe-Version adapter '${a.stripe_version}', stripe-node '${b.stripe_version}'`);
        if (!a.idempotency_key || !b.idempotency_key)
            problems.push(`${where}: Idempotency-Key adapter '${a.idempotency_key}', stripe-node '${b.idempotency_key}'`);
        const pa = params(a), pb = params(b);
        const onlyA = pa.filter((x) => !pb.includes(x)), onlyB = pb.filter((x) => !pa.includes(x));
        if (onlyA.length) problems.push(`${where}: only the adapter sends ${onlyA.join(' ')}`);
        if (onlyB.length) problems.push(`${where}: only stripe-node sends ${onlyB.join(' ')}`);
    });
};

// stripe-node's answer is the recorded answer, and of the expected kind.
const compareParse = (obj, rec, object, problems) => {
    if (!rec) { problems.push(`stripe-node: no recorded answer for ${object}`); return; }
    const sent = JSON.parse(rec.response_body);
    const got = JSON.parse(JSON.stringify(obj)); // drops lastResponse (not enumerable)
    if (got.object !== object) problems.push(`stripe-node parsed object '${got.object}', expected '${object}'`);
    if (!isDeepStrictEqual(got, sent))
        problems.push(`stripe-node's ${object} differs from gwsim's answer ${rec.seq}`);
    if (obj.lastResponse?.statusCode !== rec.status)
        problems.push(`stripe-node saw status ${obj.lastResponse?.statusCode}, gwsim answered ${rec.status}`);
};

// op NAME: the adapter's operation (gwcall args), then stripe-node's (async fn returning the
// resources it got, in order, with their expected "object"); the records of each are compared.
const op = async (name, gwArgs, lib, check) => {
    const problems = [];
    let ours, theirs, outA, outB;
    try {
        outA = gwcall(gwArgs);
        ours = newRecords();
    } catch (e) {
        report(name, [`the adapter (gwcall) failed: ${e.message}`]);
        return {};
    }
    try {
        outB = await lib();
        theirs = newRecords();
    } catch (e) {
        theirs = newRecords();
        outB = { error: e };
    }
    compareWire(ours, theirs, problems);
    if (outB.error && !check?.error) {
        problems.push(`stripe-node threw ${outB.error.type}: ${outB.error.message}`);
    } else if (outB.resources) {
        outB.resources.forEach(([obj, object], i) => compareParse(obj, theirs[i], object, problems));
    }
    if (check) check(outA, outB, problems);
    report(name, problems);
    return { outA, outB };
};

const ref = (o) => o?.ref ?? '';
const lastOf = (r) => r.resources[r.resources.length - 1][0];

// --- the operations, as tokend's adapter does them (docs/adapters.md) -------------------------
const card = (n) => ['--pan', n, '--exp-month', '3', '--exp-year', String(YEAR), '--cvc', '737', '--name', 'J Smith'];
const libTokenise = async (n) => {
    const pm = await stripe.paymentMethods.create({ type: 'card',
        card: { number: n, exp_month: 3, exp_year: YEAR, cvc: '737' },
        billing_details: { name: 'J Smith' } }, io());
    const cu = await stripe.customers.create({ payment_method: pm.id }, io());
    return { resources: [[pm, 'payment_method'], [cu, 'customer']] };
};
const okOutcome = (want) => (a, b, problems) => {
    if (a.outcome !== want) problems.push(`the adapter's outcome is ${a.outcome} (${a.code}), expected ${want}`);
};

const tok = await op('tokenise: PaymentMethod, then a Customer it is attached to', ['--op', 'tokenise', ...card(CARD_OK)],
    () => libTokenise(CARD_OK), okOutcome('ok'));
const pmB = tok.outB?.resources?.[0][0].id, cuB = tok.outB?.resources?.[1][0].id;

const piCreate = (extra) => async () => ({ resources: [[await stripe.paymentIntents.create({
    amount: 1000, currency: 'eur', customer: cuB, payment_method: pmB, payment_method_types: ['card'],
    confirm: true, ...extra, ...SELFTEST }, io()), 'payment_intent']] });

const auth = await op('charge off session, authorise only', ['--op', 'charge', '--pm-ref', tok.outA?.ref ?? '',
    '--amount', '1000', '--currency', 'eur', '--capture', 'false', '--off-session', 'true'],
piCreate({ off_session: true, capture_method: 'manual' }), okOutcome('ok'));

await op('capture', ['--op', 'capture', '--charge-ref', ref(auth.outA), '--amount', '1000', '--currency', 'eur'],
    async () => ({ resources: [[await stripe.paymentIntents.capture(lastOf(auth.outB).id, { amount_to_capture: 1000 }, io()),
        'payment_intent']] }), okOutcome('ok'));

await op('refund', ['--op', 'refund', '--charge-ref', ref(auth.outA), '--amount', '300', '--currency', 'eur'],
    async () => ({ resources: [[await stripe.refunds.create({ payment_intent: lastOf(auth.outB).id, amount: 300 }, io()),
        'refund']] }), okOutcome('ok'));

await op('charge on session, captured (setup_future_usage)', ['--op', 'charge', '--pm-ref', tok.outA?.ref ?? '',
    '--amount', '1000', '--currency', 'eur', '--capture', 'true', '--off-session', 'false'],
piCreate({ setup_future_usage: 'off_session', capture_method: 'automatic' }), okOutcome('ok'));

const auth2 = await op('charge off session, authorise only (to void)', ['--op', 'charge', '--pm-ref', tok.outA?.ref ?? '',
    '--amount', '2000', '--currency', 'usd', '--capture', 'false', '--off-session', 'true'],
async () => ({ resources: [[await stripe.paymentIntents.create({ amount: 2000, currency: 'usd', customer: cuB,
    payment_method: pmB, payment_method_types: ['card'], confirm: true, off_session: true, capture_method: 'manual' }, io()),
    'payment_intent']] }), okOutcome('ok'));

await op('void', ['--op', 'void', '--charge-ref', ref(auth2.outA)],
    async () => ({ resources: [[await stripe.paymentIntents.cancel(lastOf(auth2.outB).id, {}, io()), 'payment_intent']] }),
    okOutcome('ok'));

// retrievals: only stripe-node (the adapter never reads back), each answer parsed
{
    const problems = [];
    for (const [fn, id, object] of [[stripe.paymentMethods.retrieve.bind(stripe.paymentMethods), pmB, 'payment_method'],
        [stripe.customers.retrieve.bind(stripe.customers), cuB, 'customer'],
        [stripe.paymentIntents.retrieve.bind(stripe.paymentIntents), lastOf(auth.outB ?? { resources: [[{}]] }).id, 'payment_intent']]) {
        try {
            const obj = await fn(id);
            compareParse(obj, newRecords()[0], object, problems);
        } catch (e) {
            problems.push(`stripe-node retrieve ${object}: ${e.type}: ${e.message}`);
        }
    }
    report('retrieve PaymentMethod, Customer, PaymentIntent (stripe-node parses them)', problems);
}

// error answers: stripe-node maps each to its error class, with gwsim's code and status
{
    const problems = [];
    const expectError = async (what, fn, cls, status, code) => {
        try {
            await fn();
            problems.push(`${what}: stripe-node did not throw`);
        } catch (e) {
            if (!(e instanceof Stripe.errors[cls])) problems.push(`${what}: stripe-node threw ${e.type}, expected ${cls}`);
            if (e.statusCode !== status || (code && e.code !== code))
                problems.push(`${what}: ${e.statusCode} ${e.code}, expected ${status} ${code}`);
            if (!e.requestId) problems.push(`${what}: no request id`);
        }
        newRecords();
    };
    await expectError('unknown PaymentIntent', () => stripe.paymentIntents.retrieve('pi_nosuch000000000000000000'),
        'StripeInvalidRequestError', 404, 'resource_missing');
    await expectError('missing parameter', () => stripe.refunds.create({}, io()),
        'StripeInvalidRequestError', 400, 'parameter_missing');
    const key = { idempotencyKey: `stripe_node_contract_${process.pid}_conflict` };
    await stripe.customers.create({ description: 'first' }, key).catch(() => {});
    newRecords();
    await expectError('Idempotency-Key reused with other parameters',
        () => stripe.customers.create({ description: 'second' }, key), 'StripeIdempotencyError', 400, undefined);
    const bad = new Stripe('sk_test_wrong', { apiVersion: API_VERSION, host: 'localhost', port: Number(opt.port),
        protocol: 'https', maxNetworkRetries: 0, telemetry: false });
    await expectError('wrong secret key', () => bad.customers.retrieve(cuB), 'StripeAuthenticationError', 401, undefined);
    report('stripe-node parses gwsim\'s error answers (404, 400, idempotency, 401) into its error classes', problems);
}

await op('detach at redaction', ['--op', 'detach', '--pm-ref', tok.outA?.ref ?? ''],
    async () => ({ resources: [[await stripe.paymentMethods.detach(pmB, {}, io()), 'payment_method']] }),
    (a, b, problems) => {
        okOutcome('ok')(a, b, problems);
        const pm = b.resources?.[0][0];
        if (pm && pm.customer !== null) problems.push(`stripe-node: detached PaymentMethod has customer ${pm.customer}`);
    });

// a declined card: both tokenise, then the charge is a 402 card_error
const dtok = await op('tokenise a declining card', ['--op', 'tokenise', ...card(CARD_DECLINED)],
    () => libTokenise(CARD_DECLINED), okOutcome('ok'));
const dpm = dtok.outB?.resources?.[0][0].id, dcu = dtok.outB?.resources?.[1][0].id;
await op('charge declined: 402 card_error', ['--op', 'charge', '--pm-ref', dtok.outA?.ref ?? '', '--amount', '1000',
    '--currency', 'eur', '--capture', 'true', '--off-session', 'true'],
async () => ({ resources: [[await stripe.paymentIntents.create({ amount: 1000, currency: 'eur', customer: dcu,
    payment_method: dpm, payment_method_types: ['card'], confirm: true, off_session: true, capture_method: 'automatic' },
io()), 'payment_intent']] }),
Object.assign((a, b, problems) => {
    if (a.outcome !== 'declined' || a.code !== 'card_declined' || a.decline_code !== 'generic_decline')
        problems.push(`the adapter: ${a.outcome} ${a.code} ${a.decline_code}, expected declined card_declined generic_decline`);
    const e = b.error;
    if (!e) { problems.push('stripe-node: the declined charge did not throw'); return; }
    if (!(e instanceof Stripe.errors.StripeCardError)) problems.push(`stripe-node threw ${e.type}, expected StripeCardError`);
    if (e.code !== 'card_declined' || e.decline_code !== 'generic_decline' || e.statusCode !== 402)
        problems.push(`stripe-node: ${e.statusCode} ${e.code} ${e.decline_code}, expected 402 card_declined generic_decline`);
    if (e.raw?.payment_intent?.object !== 'payment_intent') problems.push('stripe-node: the error carries no PaymentIntent');
    if (!e.requestId) problems.push('stripe-node: the error carries no request id');
}, { error: true }));

console.log(`stripe-wire: ${ops} operations, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
