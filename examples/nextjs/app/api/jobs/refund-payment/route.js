import { readJob } from '../../../../lib/dagflow.js';
import { shop } from '../../../../lib/shop.js';

// POST /api/jobs/refund-payment: the compensation of charge-payment, when a
// later step of the saga fails.
export async function POST(req) {
  const { job, error } = await readJob(req);
  if (error) return error;
  const refundId = shop.refund(job.result.chargeId);
  if (!refundId) {
    // 500: the engine tries again, with backoff.
    return Response.json({ success: false, error: `no charge ${job.result.chargeId}` }, { status: 500 });
  }
  return Response.json({ success: true, result: { refundId } });
}
