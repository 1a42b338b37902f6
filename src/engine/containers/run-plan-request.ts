/**
 * The native front end's request for a run plan (run-plan.ts), taken out of the environment at
 * the CLI's start, before anything could pass it on (a container's `-e VAR` reads ours). No
 * imports: every command loads this.
 */
export interface PlanRequest { path: string; key: Buffer }
let request: PlanRequest | undefined;

export function takePlanRequest(env: NodeJS.ProcessEnv = process.env): void {
  const path = env.BERTH_RUN_PLAN;
  const key = env.BERTH_RUN_KEY;
  if (path === undefined && key === undefined) return;
  delete env.BERTH_RUN_PLAN;
  delete env.BERTH_RUN_KEY;
  if (path && key && /^[0-9a-f]+$/.test(key) && key.length % 2 === 0) request = { path, key: Buffer.from(key, 'hex') };
}

/** The request, once (only the command that runs a container takes it). */
export function takenPlanRequest(): PlanRequest | undefined {
  const r = request;
  request = undefined;
  return r;
}
