import { readJob } from '../../../../lib/dagflow.js';
import { shop } from '../../../../lib/shop.js';

// POST /api/jobs/release-inventory: the compensation of reserve-inventory.
// It receives "compensation": true and the result of the step it undoes.
export async function POST(req) {
  const { job, error } = await readJob(req);
  if (error) return error;
  const released = shop.release(job.result.reservationId);
  return Response.json({ success: true, result: { released } });
}
