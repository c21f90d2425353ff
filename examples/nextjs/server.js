// server.js serves the route handlers under app/ the way Next.js's App
// Router does, with nothing but node:http: a request for /api/jobs/ship-order
// calls the POST exported by app/api/jobs/ship-order/route.js with a web
// Request, and sends back the Response it returns. In a Next.js app the same
// route.js files work unchanged; this adapter only spares the example a
// framework (and npm) to run.
//
//   DAGFLOW_SECRET=change-me PORT=3000 node server.js
//
// It prints "listening on http://127.0.0.1:<port>" once it listens (PORT=0
// picks a free port), and a line for each webhook it receives.

import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const appDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'app');
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

// route returns the module of the route.js that serves pathname, or null.
const routes = new Map();
async function route(pathname) {
  // Only plain segments: no "..", no dots, nothing that leaves app/.
  if (!/^(\/[a-z0-9-]+)+$/.test(pathname)) return null;
  if (!routes.has(pathname)) {
    const file = path.join(appDir, pathname, 'route.js');
    routes.set(pathname, import(pathToFileURL(file).href).catch(() => null));
  }
  return routes.get(pathname);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function serve(req, res) {
  const url = new URL(req.url, `http://${req.headers.host ?? '127.0.0.1'}`);
  const mod = await route(url.pathname);
  if (!mod) return send(res, Response.json({ error: 'not found' }, { status: 404 }));
  const handler = METHODS.includes(req.method) ? mod[req.method] : undefined;
  if (typeof handler !== 'function') {
    return send(res, Response.json({ error: 'method not allowed' }, { status: 405 }));
  }
  const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
  const request = new Request(url, { method: req.method, headers: req.headers, body });
  send(res, await handler(request));
}

async function send(res, response) {
  const body = Buffer.from(await response.arrayBuffer());
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(body);
}

const server = http.createServer((req, res) => {
  serve(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) send(res, Response.json({ success: false, error: String(err) }, { status: 500 }));
  });
});
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
