import { readJob } from '../../../../lib/dagflow.js';

// POST /api/jobs/send-confirmation reads the results of the steps before it
// from previousSteps.
export async function POST(req) {
  const { job, error } = await readJob(req);
  if (error) return error;
  const { trackingNumber } = job.previousSteps['ship-order'].result;
  const { chargeId } = job.previousSteps['charge-payment'].result;
  return Response.json({ success: true, result: { sentTo: job.context.customer, trackingNumber, chargeId } });
}
