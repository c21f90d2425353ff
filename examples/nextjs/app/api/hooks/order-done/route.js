import { readJob } from '../../../../lib/dagflow.js';

// POST /api/hooks/order-done: the workflow's onComplete webhook, signed
// like the jobs; its body is the run's final status.
export async function POST(req) {
  const { job: status, error } = await readJob(req);
  if (error) return error;
  console.log(`webhook order-done ${status.id} ${status.state}`);
  return new Response(null, { status: 204 });
}
