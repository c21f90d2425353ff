import { readJob } from '../../../../lib/dagflow.js';
import { shop } from '../../../../lib/shop.js';

// POST /api/jobs/charge-payment charges the order's amount once: the
// Idempotency-Key header (<workflowId>/<stepId>) is the same on every attempt,
// so a retry after a lost reply gets the first charge back.
export async function POST(req) {
  const { job, error } = await readJob(req);
  if (error) return error;
  const { orderId, amount } = job.context;
  if (!job.previousSteps['reserve-inventory']) {
    return Response.json({ success: false, error: 'nothing reserved' }, { status: 422 });
  }
  const { chargeId } = shop.charge(req.headers.get('idempotency-key'), orderId, amount);
  return Response.json({ success: true, result: { chargeId, amount } });
}
