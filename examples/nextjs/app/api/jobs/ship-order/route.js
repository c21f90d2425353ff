import { readJob } from '../../../../lib/dagflow.js';

// POST /api/jobs/ship-order. An order without an address cannot ship: a 4xx
// (other than 408 and 429) fails the step for good, and the saga undoes the
// steps before it.
export async function POST(req) {
  const { job, error } = await readJob(req);
  if (error) return error;
  const { orderId, address } = job.context;
  if (!address) {
    return Response.json({ success: false, error: `order ${orderId} has no shipping address` }, { status: 422 });
  }
  return Response.json({ success: true, result: { trackingNumber: `TRK-${orderId}` } });
}
