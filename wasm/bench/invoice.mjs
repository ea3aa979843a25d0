// The 1 KB invoice both wasm benchmarks write (throughput.mjs, coldstart.mjs): the same body as
// `invoice_body` in native_throughput.rs, so that wasm and native plan the same work.

/** The invoice body (JSON text) of write `i` for `customerId`. */
export function invoiceBody(customerId, i) {
  const pad = "x".repeat(150);
  const lines = [0, 1, 2, 3].map((l) => ({
    description: `Line ${l} of invoice ${i}: consulting ${pad}`,
    quantity: l + 1,
    unitAmount: 12500 + l,
    taxAmount: 100 * l,
  }));
  return JSON.stringify({
    number: `INV-${String(i).padStart(6, "0")}`,
    customerId,
    issueDate: "2026-11-01",
    dueDate: "2026-11-30",
    currency: "EUR",
    lines,
  });
}
