// create-orders.js creates two runs of the order saga (order.json) through
// the /v1 API of 'dagflow serve', waits for each to end, and prints their
// final statuses as a JSON array:
//
//   - order_123 ships: every step completes;
//   - order_124 has no shipping address: ship-order fails, and the saga
//     refunds the payment and releases the inventory, in that order.
//
//   DAGFLOW_URL=http://127.0.0.1:8080 DAGFLOW_API_TOKEN=... node create-orders.js
//
// It exits 0 when both ended as described, 1 otherwise.

import { readFile } from 'node:fs/promises';
import { createClient, DagflowError } from './lib/dagflow.js';

const dagflow = createClient({
  baseUrl: process.env.DAGFLOW_URL ?? 'http://127.0.0.1:8080',
  token: process.env.DAGFLOW_API_TOKEN,
});

const order = JSON.parse(await readFile(new URL('./order.json', import.meta.url), 'utf8'));

// orderFor is order.json for another order: its id is the run's.
function orderFor(orderId, changes) {
  return { ...order, id: orderId, context: { ...order.context, orderId, ...changes } };
}

async function run(workflow) {
  try {
    const created = await dagflow.workflows.create(workflow);
    console.error(`created ${created.id} (${created.state})`);
  } catch (err) {
    if (err instanceof DagflowError) console.error(err.message, err.problems);
    throw err;
  }
  // Wait for the end, 30 s at a time.
  for (;;) {
    const status = await dagflow.workflows.getStatus(workflow.id, { wait: '30s' });
    if (['completed', 'failed', 'cancelled'].includes(status.state)) return status;
  }
}

const [shipped, unshippable] = await Promise.all([
  run(orderFor('order_123', {})),
  run(orderFor('order_124', { address: null })),
]);
console.log(JSON.stringify([shipped, unshippable], null, 2));

const ok =
  shipped.state === 'completed' &&
  unshippable.state === 'failed' &&
  unshippable.compensatedSteps.join() === 'charge-payment,reserve-inventory';
process.exit(ok ? 0 : 1);
