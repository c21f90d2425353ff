import { readJob } from '../../../../lib/dagflow.js';

// POST /api/hooks/order-failed: the workflow's onError webhook, called
// once the saga has undone what it could.
export async function POST(req) {
  const { job: status, error } = await readJob(req);
  if (error) return error;
  console.log(`webhook order-failed ${status.id} ${status.state} compensated=${status.compensatedSteps.join(',')}`);
  return new Response(null, { status: 204 });
}
