#!/usr/bin/env python3
"""Smoke test of libwritesync_ffi.so from Python's ctypes: a second foreign caller.

Drives the C API end to end: a pushing write performed by writesync_run_due against a local
HTTP server (Python's http.server on 127.0.0.1, allowed with allowTargetCidrs), a retry that
honours Retry-After, the webhook delivery that follows, a refused loopback target without the
allowance, bad arguments, and the layout-1 fixture migrated when its file is opened. Usage:

    python3 ffi/tests/python/smoke.py [path/to/libwritesync_ffi.so]

Prints "N passed, M failed" last; exits 1 when anything failed.
"""

import base64
import ctypes
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(HERE, "..", "..", "..", "target", "release", "libwritesync_ffi.so")

OK, INVALID_ARGUMENT, INVALID_UTF8, INVALID_JSON, STORAGE_ERROR, ENGINE_ERROR, PANIC = range(7)
NO_DEADLINE = 2**63 - 1
ADMIN = "py-admin-token"

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)


class Lib:
    """The C API with its argument and result types declared."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        p = ctypes.c_void_p
        s = ctypes.c_char_p
        i64 = ctypes.c_int64
        sig = {
            "writesync_open": [s, s, ctypes.POINTER(p)],
            "writesync_close": [p],
            "writesync_handle": [p, s, i64, ctypes.POINTER(p)],
            "writesync_due": [p, i64, ctypes.POINTER(p)],
            "writesync_due_limit": [p, i64, ctypes.c_size_t, ctypes.POINTER(p)],
            "writesync_report": [p, s, i64],
            "writesync_next_deadline": [p, ctypes.POINTER(i64)],
            "writesync_run_due": [p, i64],
            "writesync_prune": [p, i64, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
            "writesync_string_free": [p],
            "writesync_last_error_message": [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        }
        for name, args in sig.items():
            f = getattr(lib, name)
            f.argtypes = args
            f.restype = ctypes.c_int
        self.lib = lib

    def __getattr__(self, name):
        return getattr(self.lib, "writesync_" + name)

    def message(self):
        n = ctypes.c_size_t(0)
        self.last_error_message(None, 0, ctypes.byref(n))
        buf = ctypes.create_string_buffer(n.value + 1)
        self.last_error_message(buf, len(buf), None)
        return buf.value.decode()

    def take(self, ptr):
        """The text of a returned string, which is then freed."""
        text = ctypes.string_at(ptr.value).decode()
        check(self.string_free(ptr) == OK, "string_free")
        return text


def now_ms():
    return int(time.time() * 1000)


class Engine:
    def __init__(self, lib, path, config):
        self.lib = lib
        self.e = ctypes.c_void_p()
        rc = lib.open(path.encode(), json.dumps(config).encode(), ctypes.byref(self.e))
        if rc != OK:
            raise RuntimeError(f"open: {rc} {lib.message()}")

    def close(self):
        check(self.lib.close(self.e) == OK, "close")

    def handle(self, method, path, headers=None, body=None, now=None):
        req = {"method": method, "path": path, "headers": headers or {}}
        if body is not None:
            req["headers"]["Content-Type"] = "application/json"
            req["body"] = json.dumps(body)
        out = ctypes.c_void_p()
        rc = self.lib.handle(self.e, json.dumps(req).encode(), now or now_ms(), ctypes.byref(out))
        check(rc == OK, f"handle {method} {path}: {rc} {self.lib.message() if rc else ''}")
        answer = json.loads(self.lib.take(out))
        try:
            answer["json"] = json.loads(answer["body"])
        except ValueError:
            answer["json"] = None
        return answer

    def admin(self, method, path, body=None):
        return self.handle(method, path, {"Authorization": f"Bearer {ADMIN}"}, body)

    def deadline(self):
        d = ctypes.c_int64(0)
        check(self.lib.next_deadline(self.e, ctypes.byref(d)) == OK, "next_deadline")
        return d.value

    def run_due(self, now):
        rc = self.lib.run_due(self.e, now)
        check(rc == OK, f"run_due: {rc} {self.lib.message() if rc else ''}")


class Recorder(BaseHTTPRequestHandler):
    """Answers pushes and webhooks; the first `busy` pushes get 503 with Retry-After: 1."""

    seen = []
    busy = 0

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        # Header names are case-insensitive (ureq sends them in lower case): keep them lowered.
        Recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.path == "/push" and Recorder.busy > 0:
            Recorder.busy -= 1
            payload, status, extra = b"busy", 503, {"Retry-After": "1"}
        elif self.path == "/push":
            payload, status, extra = b'{"id":"PY-1"}', 201, {}
        else:
            payload, status, extra = b"", 200, {}
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def tenant(eng, push_url, hook_url=None):
    a = eng.admin("POST", "/admin/accounts", {"domain": "py.example.com", "writeEnabled": True})
    check(a["status"] == 201, f"account {a}")
    aid = a["json"]["id"]
    k = eng.admin("POST", f"/admin/accounts/{aid}/api-keys", {"scopes": ["api.read", "api.write"]})["json"]
    c = eng.admin("POST", f"/admin/accounts/{aid}/connections",
                  {"app": "quickbooks", "type": "accounting", "pushUrl": push_url})
    check(c["status"] == 201, f"connection {c}")
    if hook_url:
        w = eng.admin("POST", f"/admin/accounts/{aid}/webhooks",
                      {"url": hook_url, "events": ["*"],
                       "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
        check(w["status"] == 201, f"webhook {w}")
    token = base64.b64encode(f"{k['key']}:{k['secret']}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def push_write(eng, auth):
    w = eng.handle("POST", "/api/customers", dict(auth, **{"X-Sync-Data": "push", "X-Tracking-ID": "py-1"}),
                   {"name": "Python Ltd"})
    check(w["status"] == 201, f"write {w}")
    return w["headers"].get("X-Sync-ID")


def sync_of(eng, auth, sync_id):
    return eng.handle("GET", f"/api/syncs/{sync_id}", dict(auth))["json"]


def test_run_due_against_local_server(lib, tmp, port):
    eng = Engine(lib, os.path.join(tmp, "a.db"),
                 {"adminToken": ADMIN, "seed": "py", "pushRetrySchedule": [0.2],
                  "webhookRetrySchedule": [0.2], "allowTargetCidrs": ["127.0.0.0/8"],
                  "outboundTimeoutMs": 10000, "connectTimeoutMs": 5000})
    auth = tenant(eng, f"http://127.0.0.1:{port}/push", f"http://127.0.0.1:{port}/hook")
    Recorder.seen.clear()
    Recorder.busy = 1
    sync_id = push_write(eng, auth)
    t = now_ms()
    eng.run_due(t)
    s = sync_of(eng, auth, sync_id)
    check(s["status"] == "in_progress", f"after a 503 the sync waits for its retry: {s['status']}")
    d = eng.deadline()
    check(t + 1000 <= d < NO_DEADLINE, f"retry no sooner than Retry-After: {d - t}")
    eng.run_due(d)
    s = sync_of(eng, auth, sync_id)
    check(s["status"] == "succeeded", f"sync succeeded: {s}")
    check(s["targets"][0]["remoteId"] == "PY-1", "remoteId kept")
    check(s["targets"][0]["attempts"] == 2, "two attempts")
    pushes = [r for r in Recorder.seen if r[0] == "/push"]
    hooks = [r for r in Recorder.seen if r[0] == "/hook"]
    check(len(pushes) == 2, f"two pushes sent: {len(pushes)}")
    if len(pushes) == 2:
        keys = {p[1].get("idempotency-key") for p in pushes}
        check(len(keys) == 1 and None not in keys, "the retry carries the same Idempotency-Key")
        check(pushes[0][1].get("x-sync-id") == sync_id, "X-Sync-ID sent")
        check(pushes[0][1].get("x-tracking-id") == "py-1", "X-Tracking-ID sent")
        body = json.loads(pushes[0][2])
        check(body["operation"] == "create" and body["objectType"] == "customer", "push body")
    events = sorted(json.loads(h[2])["event"] for h in hooks)
    check(events == ["api_push_complete", "api_push_update"], f"webhook events {events}")
    check(all("webhook-signature" in h[1] for h in hooks), "deliveries are signed")
    check(eng.deadline() == NO_DEADLINE, "nothing owed at the end")
    eng.close()


def test_refused_loopback(lib, tmp, port):
    eng = Engine(lib, os.path.join(tmp, "b.db"), {"adminToken": ADMIN, "seed": "py2"})
    auth = tenant(eng, f"http://localhost:{port}/push")
    Recorder.seen.clear()
    sync_id = push_write(eng, auth)
    eng.run_due(now_ms())
    s = sync_of(eng, auth, sync_id)
    check(s["status"] == "failed", f"refused push fails: {s['status']}")
    check((s["targets"][0]["lastError"] or "").startswith("refused"), f"reason: {s['targets'][0]['lastError']}")
    check(Recorder.seen == [], "nothing was sent to the refused address")
    eng.close()


def test_host_networking_and_bad_args(lib, tmp):
    eng = Engine(lib, os.path.join(tmp, "c.db"), {"adminToken": ADMIN, "seed": "py3"})
    auth = tenant(eng, "https://qb.example.com/push")
    sync_id = push_write(eng, auth)
    out = ctypes.c_void_p()
    check(lib.due(eng.e, now_ms(), ctypes.byref(out)) == OK, "due")
    items = json.loads(lib.take(out))
    check(len(items) == 1 and items[0]["kind"] == "push", f"one push due: {items}")
    result = {"id": items[0]["id"], "status": 200, "headers": {}, "body": '{"id":"X-9"}'}
    check(lib.report(eng.e, json.dumps(result).encode(), now_ms()) == OK, "report")
    check(lib.report(eng.e, json.dumps(result).encode(), now_ms()) == ENGINE_ERROR, "stale report")
    check(lib.message().startswith("unknown_work: "), f"message: {lib.message()}")
    check(sync_of(eng, auth, sync_id)["status"] == "succeeded", "succeeded through due/report")
    removed = ctypes.c_size_t(99)
    check(lib.prune(eng.e, now_ms(), 100, ctypes.byref(removed)) == OK and removed.value == 0, "prune")

    # Bad arguments: reported, never crashing.
    e = ctypes.c_void_p(1)
    check(lib.open(None, b"{}", ctypes.byref(e)) == INVALID_ARGUMENT, "NULL db_path")
    check(e.value is None, "engine_out reset to NULL")
    check(lib.message() == "db_path is NULL", f"message: {lib.message()}")
    check(lib.open(b"\xff\xfe.db", b"{}", ctypes.byref(e)) == INVALID_UTF8, "bad UTF-8 path")
    check(lib.open(os.path.join(tmp, "d.db").encode(), b"{nope", ctypes.byref(e)) == INVALID_JSON, "bad JSON")
    check(lib.open(b"/nonexistent-writesync/x/y.db", b"{}", ctypes.byref(e)) == STORAGE_ERROR, "bad dir")
    check(lib.handle(eng.e, b"[]", 0, ctypes.byref(out)) == INVALID_JSON, "envelope not an object")
    check(lib.handle(eng.e, b'"\xc3"', 0, ctypes.byref(out)) == INVALID_UTF8, "bad UTF-8 request")
    check(lib.handle(None, b"{}", 0, ctypes.byref(out)) == INVALID_ARGUMENT, "NULL engine")
    check(lib.report(eng.e, b'{"id":"t.a.1"}', 0) == INVALID_JSON, "outcome without status or error")
    check(lib.next_deadline(eng.e, None) == INVALID_ARGUMENT, "NULL deadline_ms_out")
    check(lib.string_free(None) == INVALID_ARGUMENT, "free NULL")
    check(lib.close(None) == INVALID_ARGUMENT, "close NULL")
    eng.close()


def test_layout1_fixture(lib, tmp):
    """SQLite files holding the layout-1 fixture (tests/fixtures/layout1), the layout-3
    fixture (tests/fixtures/layout3: the same data as the layout-3 engine migrated it) and the
    layout-4 fixture (tests/fixtures/layout4: as the layout-4 engine migrated it) are migrated
    by writesync_open and answer every read the layout-1 engine recorded."""
    for layout in ("layout1", "layout3", "layout4"):
        layout_fixture(lib, tmp, layout)


def layout_fixture(lib, tmp, layout):
    import sqlite3

    fixtures = os.path.join(HERE, "..", "..", "..", "tests", "fixtures")
    with open(os.path.join(fixtures, layout, "store.json")) as f:
        entries = json.load(f)
    with open(os.path.join(fixtures, "layout1", "reads.json")) as f:
        reads = json.load(f)
    path = os.path.join(tmp, f"{layout}.db")
    Engine(lib, path, {}).close()  # the file and its SQL schema
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", entries)
    db.commit()
    db.close()
    # The configuration of the fixture's scenario (tests/tests/layout_fixture.rs).
    config = {"adminToken": "layout-admin-token", "seed": "writesync layout fixture",
              "pushRetrySchedule": [1, 4], "webhookRetrySchedule": [2, 10]}
    eng = Engine(lib, path, config)
    later = 1_790_000_000_000 + 86_400_000
    for r in reads["requests"]:
        a = eng.handle("GET", r["path"], {"Authorization": r["auth"]}, now=later)
        body = a["json"] if a["json"] is not None else a["body"]
        got = {"status": a["status"], "headers": a["headers"], "body": body}
        check(got == r["expect"], f"{layout} fixture read {r['path']}: {got} != {r['expect']}")
    want = reads["deadline"] if reads["deadline"] is not None else NO_DEADLINE
    check(eng.deadline() == want, f"{layout} fixture deadline")
    eng.close()
    db = sqlite3.connect(path)
    marker = db.execute("SELECT value FROM kv WHERE key = 'meta/layout'").fetchall()
    check(marker == [('{"version":5}',)], f"{layout} layout marker {marker}")
    with open(os.path.join(fixtures, "layout1", "migrated.json")) as f:
        want = [tuple(e) for e in json.load(f)]
    got = db.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
    check(got == want, f"{layout} fixture: the migrated file differs from layout1/migrated.json")
    db.close()


def main():
    lib_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_LIB
    lib = Lib(lib_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tmp = tempfile.mkdtemp(prefix="writesync-py-")
    try:
        for test in (test_run_due_against_local_server, test_refused_loopback):
            try:
                test(lib, tmp, port)
            except Exception as e:  # a crash of one test is a failure, the rest still run
                check(False, f"{test.__name__}: {e!r}")
        for test in (test_host_networking_and_bad_args, test_layout1_fixture):
            try:
                test(lib, tmp)
            except Exception as e:
                check(False, f"{test.__name__}: {e!r}")
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
