import { readJob } from '../../../../lib/dagflow.js';
import { shop } from '../../../../lib/shop.js';

// POST /api/jobs/reserve-inventory: the first step of the order saga.
export async function POST(req) {
  const { job, error } = await readJob(req);
  if (error) return error;
  const reservationId = shop.reserve(job.context.orderId);
  return Response.json({ success: true, result: { reservationId } });
}
