#!/usr/bin/env bash
# API fuzzing of a running `writesync serve` from its own OpenAPI document, with schemathesis.
#
# Builds the server, starts `writesync serve` on a temporary database and a free 127.0.0.1
# port with a known admin token, creates the data an authenticated run needs (an account with
# write mode on and an api.read+api.write key, one object of each type, a loopback sink as the
# account's source application and webhook endpoint), and runs schemathesis against every
# operation of `GET /openapi.json` with both security schemes (basicAuth for /api, adminBearer
# for /admin). Checks: no 5xx, and status code, content type, headers and body of every answer
# conform to the document. Exits non-zero on any failure.
#
# Everything runs on loopback. When the kernel allows it (root on Linux), the server, the sink
# and schemathesis run in a network namespace of their own that has nothing but `lo`, so no
# generated URL can ever be reached; otherwise the URLs that schemathesis may register belong
# to an account whose data API it never writes to (no push or webhook is ever sent for them).
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 100 per operation and phase),
# SCHEMATHESIS_TIMEOUT (seconds, default 600: a hard bound on the run; exceeding it fails),
# SCHEMATHESIS_SEED (default: random; printed, so a failing run can be repeated),
# SCHEMATHESIS_CHECKS (default: the five above; `all` adds schemathesis' stricter checks).
# Reports (JUnit, NDJSON) go to target/schemathesis-report/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ST_VERSION=4.32.5
VENV="$ROOT/target/schemathesis-venv"
ADMIN_TOKEN="schemathesis-admin-token-0123456789"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
HARD_TIMEOUT="${SCHEMATHESIS_TIMEOUT:-600}"
CHECKS="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}"
SEED="${SCHEMATHESIS_SEED:-$(( (RANDOM << 15) | RANDOM ))}"

if [ "${1:-}" != "--inner" ]; then
  # Outside: install and build (these need the registries), then run the rest isolated.
  if [ ! -x "$VENV/bin/st" ] || [ "$("$VENV/bin/st" --version 2>/dev/null | awk '{print $3}')" != "$ST_VERSION" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
  fi
  cargo build -p writesync-server --quiet
  export SCHEMATHESIS_SEED="$SEED"
  if unshare --net true 2>/dev/null; then
    echo "schemathesis: running in a network namespace with loopback only"
    exec unshare --net bash "$0" --inner --netns
  fi
  echo "schemathesis: no network namespace available; running on the host's loopback"
  exec bash "$0" --inner
fi

# ---- inner part: everything below talks to 127.0.0.1 only ----
if [ "${2:-}" = "--netns" ]; then
  ip link set lo up 2>/dev/null || python3 - <<'EOF'
# `ip` missing: bring lo up through ioctl.
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifr = struct.pack("16sH", b"lo", 0)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, ifr))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 0x1))
EOF
fi

WORK=$(mktemp -d)
SERVER_PID=""
SINK_PID=""
cleanup() {
  set +e
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  rm -rf "$WORK"
  return 0
}
trap cleanup EXIT

# A loopback sink for pushes and webhook deliveries: answers 201 {"id": ...} to every POST.
"$VENV/bin/python" - "$WORK/sink.port" <<'EOF' &
import json, sys, itertools
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
counter = itertools.count(1)
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(min(n, 1 << 20))
        body = json.dumps({"id": f"sink-{next(counter)}"}).encode()
        self.send_response(200 if self.path.startswith("/hook") else 201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
EOF
SINK_PID=$!

BIN="$ROOT/target/debug/writesync"
"$BIN" serve --db "$WORK/fuzz.db" --listen 127.0.0.1:0 --admin-token "$ADMIN_TOKEN" \
  --allow-target-cidr 127.0.0.0/8 --push-retry-schedule 0.05 --webhook-retry-schedule 0.05 \
  >"$WORK/stdout.log" 2>"$WORK/stderr.log" &
SERVER_PID=$!

ADDR=""
for _ in $(seq 1 200); do
  ADDR=$(grep -m1 '"msg":"listening"' "$WORK/stderr.log" 2>/dev/null \
    | sed -E 's/.*"addr":"([^"]+)".*/\1/' || true)
  [ -n "$ADDR" ] && [ -f "$WORK/sink.port" ] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "writesync serve exited early:"; cat "$WORK/stderr.log"; exit 1
  fi
  sleep 0.05
done
[ -n "$ADDR" ] || { echo "writesync serve did not start"; cat "$WORK/stderr.log"; exit 1; }
SINK="http://127.0.0.1:$(cat "$WORK/sink.port")"
BASE="http://$ADDR"
echo "schemathesis: server at $BASE, sink at $SINK, seed $SEED, max examples $MAX_EXAMPLES"

# Setup: accounts, key, one object of each type; writes the schemathesis config. The customer,
# vendor and account are each referred to (by the invoice, its line, the expense), so the
# DELETE operations on their paths answer 409 and the objects stay for the other operations.
"$VENV/bin/python" - "$BASE" "$SINK" "$ADMIN_TOKEN" "$WORK/schemathesis.toml" <<'EOF'
import base64, json, sys, urllib.request
base, sink, admin, out = sys.argv[1:5]

def call(method, path, body=None, auth=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", auth or f"Bearer {admin}")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

# Account A: the data API's (its own connection and webhook point at the loopback sink).
a = call("POST", "/admin/accounts", {"domain": "fuzz-data.example.com", "writeEnabled": True})
k = call("POST", f"/admin/accounts/{a['id']}/api-keys", {"scopes": ["api.read", "api.write"]})
call("POST", f"/admin/accounts/{a['id']}/connections",
     {"app": "quickbooks", "type": "accounting", "pushUrl": sink + "/push"})
call("POST", f"/admin/accounts/{a['id']}/webhooks", {"url": sink + "/hook", "events": ["*"]})
# Account B: the admin API's. Schemathesis may register any URL here; B's data API is never
# written to, so nothing is ever sent to them.
b = call("POST", "/admin/accounts", {"domain": "fuzz-admin.example.com"})
basic = "Basic " + base64.b64encode(f"{k['key']}:{k['secret']}".encode()).decode()
api = lambda m, p, body: call(m, p, body, basic)
cust = api("POST", "/api/customers", {"name": "Fuzz Customer"})
vend = api("POST", "/api/vendors", {"name": "Fuzz Vendor"})
acct = api("POST", "/api/accounts", {"code": "4000", "name": "Sales", "type": "income"})
inv = api("POST", "/api/invoices", {"number": "FUZZ-1", "customerId": cust["id"],
          "issueDate": "2026-01-01", "dueDate": "2026-01-31", "currency": "EUR",
          "lines": [{"description": "x", "quantity": 1, "unitAmount": 100000000,
                     "accountId": acct["id"]}]})
exp = api("POST", "/api/expenses", {"vendorId": vend["id"], "date": "2026-01-02",
          "currency": "EUR", "lines": [{"description": "x", "amount": 100}]})
bank = api("POST", "/api/bank-transactions", {"bankAccount": "main", "date": "2026-01-03",
           "amount": -100, "currency": "EUR", "description": "x"})
pay = api("POST", f"/api/invoices/{inv['id']}/payments", {"amount": 1, "date": "2026-01-04"})

def q(s):
    return json.dumps(s)

ops = [
    ("/api/customers/{id}", "path.id", cust["id"]),
    ("/api/vendors/{id}", "path.id", vend["id"]),
    ("/api/accounts/{id}", "path.id", acct["id"]),
    ("/api/invoices/{id}", "path.id", inv["id"]),
    ("/api/invoices/{id}/payments", "path.id", inv["id"]),
    ("/api/expenses/{id}", "path.id", exp["id"]),
    ("/api/bank-transactions/{id}", "path.id", bank["id"]),
    ("/api/payments/{id}", "path.id", pay["id"]),
]
lines = [
    "[auth.openapi.basicAuth]",
    f"username = {q(k['key'])}",
    f"password = {q(k['secret'])}",
    "",
    "[auth.openapi.adminBearer]",
    f"bearer = {q(admin)}",
    "",
    "[parameters]",
    f'"path.accountId" = {q(b["id"])}',
    "",
]
for path, name, value in ops:
    lines += ["[[operations]]", f"include-path = {q(path)}",
              f"parameters = {{ {q(name)} = {q(value)} }}", ""]
with open(out, "w") as f:
    f.write("\n".join(lines))
EOF

mkdir -p "$ROOT/target/schemathesis-report"
# schemathesis keeps a cache (.schemathesis/) in its working directory: use the temporary one.
cd "$WORK"
set +e
# One worker: with two threads, CPython 3.11's ast module (which hypothesis uses to describe
# strategies) can fail with "AST constructor recursion depth mismatch", a tool error.
timeout --signal=INT --kill-after=10 "$HARD_TIMEOUT" \
  "$VENV/bin/st" --no-color --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
  --checks "$CHECKS" \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" --seed "$SEED" \
  --workers 1 --request-timeout 10 --max-redirects 0 \
  --suppress-health-check all --warnings off \
  --report junit,ndjson --report-dir "$ROOT/target/schemathesis-report"
STATUS=$?
set -e

# The server must have survived the run and logged no internal error.
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "schemathesis: writesync serve died during the run"; tail -50 "$WORK/stderr.log"; exit 1
fi
if grep -q '"level":"error"' "$WORK/stderr.log"; then
  echo "schemathesis: the server logged errors:"; grep '"level":"error"' "$WORK/stderr.log" | head -20
  STATUS=1
fi
exit "$STATUS"
