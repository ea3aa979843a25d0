// Compiled with `tsc --noEmit` by run-tests.sh: the shipped index.d.ts describes a usable API.
import {
  createEngine,
  MemoryHost,
  WritesyncError,
  type AsyncHost,
  type Engine,
  type AsyncEngine,
  type LegacyHost,
  type Row,
  type SyncHost,
  type WorkItem,
  type Outcome,
  type ApiResponse,
} from "writesync-wasm";

class SqlLikeHost implements SyncHost {
  rows = new Map<string, string>();
  get(key: string): string | undefined {
    return this.rows.get(key);
  }
  scan(prefix: string, offset: number, limit: number): Row[] {
    const keys = [...this.rows.keys()].filter((k) => k.startsWith(prefix)).sort();
    return keys.slice(offset, offset + limit).map((k): Row => [k, this.rows.get(k) ?? ""]);
  }
  apply(batch: Parameters<SyncHost["apply"]>[0]): void {
    for (const op of batch) {
      if (op.op === "put") this.rows.set(op.key, op.value);
      else this.rows.delete(op.key);
    }
  }
}

class IdbLikeHost implements AsyncHost {
  readonly async = true;
  inner = new SqlLikeHost();
  async get(key: string) {
    return this.inner.get(key);
  }
  async scan(prefix: string, offset: number, limit: number) {
    return this.inner.scan(prefix, offset, limit);
  }
  async apply(batch: Parameters<AsyncHost["apply"]>[0]) {
    this.inner.apply(batch);
  }
}

const legacy: LegacyHost = {
  async entries() {
    return [["k", "v"] as const];
  },
  apply() {},
};

export async function example(): Promise<void> {
  const engine: Engine = await createEngine(new MemoryHost(), { adminToken: "t", pushRetrySchedule: [1, 5] });
  const other = await createEngine(new SqlLikeHost(), { adminToken: "t", seed: "fixed" });
  const browser: AsyncEngine = await createEngine(new IdbLikeHost(), { adminToken: "t", seed: new Uint8Array(32) });
  const old: Engine = await createEngine(legacy, { adminToken: "t" });
  const r: ApiResponse = await engine.handle({ method: "GET", path: "/healthz", headers: new Headers() }, Date.now());
  const status: number = r.status;
  const items: WorkItem[] = await engine.due(new Date(), 10);
  for (const item of items) {
    const outcome: Outcome = item.kind === "push" ? { status: 201, body: "{}" } : { error: "timeout" };
    await engine.report(item.id, outcome, Date.now());
  }
  const next: number | null = other.nextDeadline();
  const later: number | null = await browser.nextDeadline();
  const { entries, bytes, scans } = old.cacheStats;
  const memory: number = old.wasmMemoryBytes;
  try {
    await engine.report("x", { status }, Date.now());
  } catch (e) {
    if (e instanceof WritesyncError && e.code === "unknown_work") console.log(e.message, next, later, entries, bytes, scans, memory);
  }
  engine.free();
}
