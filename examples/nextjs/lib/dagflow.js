// The two halves of talking to 'dagflow serve' from JavaScript, with nothing
// but Node's built-ins (node:crypto, fetch):
//
//   - readJob(req): what a job handler (a Next.js route handler) calls first:
//     it checks the Dagflow-Signature header and returns the job's input;
//   - createClient({baseUrl, token}): the calls of the hosted platform's
//     client (workflows.create, workflows.getStatus, ...) over /v1.

import { createHmac, timingSafeEqual } from 'node:crypto';

// How far a signature's timestamp may be from now: older requests are
// replays.
const TOLERANCE_SECONDS = 5 * 60;

// verifySignature checks a Dagflow-Signature header,
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>", against
// the raw body. Several v1 elements may come (secret rotation): one matching
// is enough. It returns "" when the signature is good, else why not.
export function verifySignature(header, rawBody, secret, nowSeconds = Date.now() / 1000) {
  if (!header) return 'no Dagflow-Signature header';
  let t = null;
  const v1 = [];
  for (const part of header.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) return 'malformed Dagflow-Signature header';
    const key = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (key === 't') {
      if (t !== null || !/^\d{1,18}$/.test(value)) return 'malformed t in Dagflow-Signature';
      t = value;
    } else if (key === 'v1') {
      if (!/^[0-9a-f]{64}$/i.test(value)) return 'malformed v1 in Dagflow-Signature';
      v1.push(Buffer.from(value, 'hex'));
    }
  }
  if (t === null || v1.length === 0) return 'Dagflow-Signature lacks t or v1';
  const want = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  // Compare with every element, in constant time.
  const ok = v1.map((got) => timingSafeEqual(got, want)).includes(true);
  if (!ok) return 'bad signature';
  if (Math.abs(nowSeconds - Number(t)) > TOLERANCE_SECONDS) return 'signature too old (or from the future)';
  return '';
}

// readJob reads the body of a job request (or webhook) after checking its
// signature with $DAGFLOW_SECRET. It returns {job} with the parsed body, or
// {error: Response} to return as it is: 401 for a bad signature, which the
// engine takes as a failure not worth retrying.
export async function readJob(req) {
  const secret = process.env.DAGFLOW_SECRET;
  const raw = Buffer.from(await req.arrayBuffer());
  if (secret) {
    const why = verifySignature(req.headers.get('dagflow-signature'), raw, secret);
    if (why) return { error: Response.json({ success: false, error: why }, { status: 401 }) };
  }
  try {
    return { job: JSON.parse(raw.toString('utf8')) };
  } catch {
    return { error: Response.json({ success: false, error: 'the body is not JSON' }, { status: 400 }) };
  }
}

// DagflowError is an error answer of the API: its status and message, and
// the problems of an invalid workflow.
export class DagflowError extends Error {
  constructor(status, body) {
    super(`dagflow: ${status}: ${body.error ?? 'no message'}`);
    this.status = status;
    this.problems = body.problems ?? [];
  }
}

// createClient returns the client of a 'dagflow serve' at baseUrl, sending
// token (its DAGFLOW_API_TOKEN) with every call.
export function createClient({ baseUrl, token }) {
  async function call(method, path, body) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(new URL(path, baseUrl), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) throw new DagflowError(res.status, json ?? {});
    return json;
  }
  // Run ids may hold "/" (child runs): one path segment, percent-encoded.
  const run = (id) => `/v1/workflows/${encodeURIComponent(id)}`;
  return {
    workflows: {
      create: (workflow) => call('POST', '/v1/workflows', workflow),
      // getStatus waits up to wait (such as "30s") for the run to end.
      getStatus: (id, { wait } = {}) => call('GET', run(id) + (wait ? `?wait=${encodeURIComponent(wait)}` : '')),
      list: ({ state, limit, after } = {}) => {
        const q = new URLSearchParams(Object.entries({ state, limit, after }).filter(([, v]) => v !== undefined));
        return call('GET', `/v1/workflows?${q}`);
      },
      cancel: (id) => call('POST', `${run(id)}/cancel`),
      retry: (id) => call('POST', `${run(id)}/retry`),
    },
    events: {
      send: ({ name, key, payload }) => call('POST', '/v1/events', { name, key, payload }),
    },
  };
}
