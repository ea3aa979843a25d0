// Compiled with `tsc --noEmit` by run-tests.sh: the shipped index.d.ts describes a usable API.
import { createEngine, MemoryHost, WritesyncError, type Engine, type Host, type WorkItem, type Outcome, type ApiResponse } from "writesync-wasm";

class SqlLikeHost implements Host {
  rows = new Map<string, string>();
  async entries() {
    return [...this.rows].map(([key, value]) => ({ key, value }));
  }
  async apply(batch: Parameters<Host["apply"]>[0]) {
    for (const op of batch) {
      if (op.op === "put") this.rows.set(op.key, op.value);
      else this.rows.delete(op.key);
    }
  }
}

export async function example(): Promise<void> {
  const engine: Engine = await createEngine(new MemoryHost(), { adminToken: "t", pushRetrySchedule: [1, 5] });
  const other = await createEngine(new SqlLikeHost(), { adminToken: "t", seed: "fixed" });
  const r: ApiResponse = await engine.handle({ method: "GET", path: "/healthz", headers: new Headers() }, Date.now());
  const status: number = r.status;
  const items: WorkItem[] = await engine.due(new Date(), 10);
  for (const item of items) {
    const outcome: Outcome = item.kind === "push" ? { status: 201, body: "{}" } : { error: "timeout" };
    await engine.report(item.id, outcome, Date.now());
  }
  const next: number | null = other.nextDeadline();
  try {
    await engine.report("x", { status }, Date.now());
  } catch (e) {
    if (e instanceof WritesyncError && e.code === "unknown_work") console.log(e.message, next);
  }
  engine.free();
}
