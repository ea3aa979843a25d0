#!/usr/bin/env python3
"""Writes the hand-written seed inputs of fuzz/crashers/<target>/ (the files named seed-*).

The fuzz targets do not read JSON or HTTP directly: they decode their bytes with the
`arbitrary` crate into the types of tests/src/fuzzing.rs (FuzzRequest, FuzzJson, Input). This
script encodes chosen values in the byte layout that `arbitrary` 1.5 (pinned by
fuzz/Cargo.lock) decodes: integers little-endian, an enum variant from a u32, each Vec item
behind a "continue" byte, a bool as the low bit of a byte, and string lengths taken from the
END of the data. If those types or the `arbitrary` version change, the files still replay
(every byte string is a valid input) but may decode to other values: run the script again.

Usage, from the repository root: python3 fuzz/crashers/seeds.py (overwrites the seed-* files).
"""
import os
import struct

OUT = os.path.dirname(os.path.abspath(__file__))


class Enc:
    """Bytes for `arbitrary::Unstructured`: front bytes in reading order, lengths at the end."""

    def __init__(self):
        self.ops = []  # ('f', bytes) read from the front, or ('s', n) a length read from the end

    def raw(self, b):
        self.ops.append(('f', bytes(b)))
        return self

    def u8(self, v):
        return self.raw([v & 0xFF])

    def u16(self, v):
        return self.raw(struct.pack('<H', v))

    def u32(self, v):
        return self.raw(struct.pack('<I', v))

    def i64(self, v):
        return self.raw(struct.pack('<q', v))

    def f64(self, v):
        return self.raw(struct.pack('<d', v))

    def boolean(self, v):
        return self.u8(1 if v else 0)

    def variant(self, i, count):
        # derive(Arbitrary) picks variant (u32 * count) >> 32: take the middle of i's range.
        x = ((2 * i + 1) << 32) // (2 * count)
        assert (x * count) >> 32 == i
        return self.u32(x)

    def string(self, s):
        b = s.encode('utf-8') if isinstance(s, str) else s
        self.ops.append(('s', len(b)))
        return self.raw(b)

    def vec(self, items, each):
        for it in items:
            self.boolean(True)
            each(self, it)
        return self.boolean(False)

    def option(self, v, each):
        if v is None:
            return self.boolean(False)
        self.boolean(True)
        each(self, v)
        return self

    def build(self):
        front = b''.join(b for k, b in self.ops if k == 'f')
        n_sizes = sum(1 for k, _ in self.ops if k == 's')
        # A length takes 1 byte while at most 256 bytes are left, 2 while at most 65537 are
        # left, else 4; the widths change the total, so iterate until they are stable.
        widths = [1] * n_sizes
        for _ in range(10):
            total = len(front) + sum(widths)
            consumed, new = 0, []
            for k, v in self.ops:
                if k == 'f':
                    consumed += len(v)
                else:
                    left = total - consumed
                    w = 1 if left <= 256 else 2 if left <= 65537 else 4
                    new.append(w)
                    consumed += w
            if new == widths:
                break
            widths = new
        total = len(front) + sum(widths)
        back, consumed, si = [], 0, 0
        for k, v in self.ops:
            if k == 'f':
                consumed += len(v)
            else:
                w = widths[si]
                si += 1
                left = total - consumed
                # The decoder reads (big-endian int) % (left - w + 1): v must not exceed left - w.
                assert left >= 2 and v <= left - w, (v, left, w)
                back.append(v.to_bytes(w, 'big'))
                consumed += w
        return front + b''.join(reversed(back))


# ---- the types of tests/src/fuzzing.rs ----
FIELDS = ["name", "email", "phone", "contactName", "billingAddress", "line1", "country", "code",
          "type", "active", "number", "customerId", "issueDate", "dueDate", "currency", "lines",
          "description", "quantity", "unitAmount", "accountId", "taxAmount", "total",
          "amountPaid", "balance", "status", "amount", "date", "reference", "vendorId", "vendor",
          "bankAccount", "externalId", "memo", "id", "version", "domain", "writeEnabled",
          "scopes", "app", "pushUrl", "objects", "url", "events", "username", "password",
          "signingSecret"]
VALUES = ["2026-11-01", "2026-02-30", "EUR", "usd", "void", "open", "income", "accounting", "crm",
          "api.write", "*", "https://x.example.com/h", "http://127.0.0.1/", "a@b.co", "INV-1",
          "customer", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
SEGMENTS = ["api", "admin", "accounts", "customers", "vendors", "invoices", "payments", "expenses",
            "bank-transactions", "syncs", "api-keys", "connections", "webhooks", "deliveries",
            "retry", "healthz", "openapi.json"]
HEADERS = ["X-Sync-Data", "X-Sync-Sources", "X-Tracking-ID", "Idempotency-Key", "If-Match",
           "Content-Type"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW"]


class Field:
    """FuzzJson::Field: one of VALUES."""

    def __init__(self, v):
        self.i = VALUES.index(v)


class Flt:
    """FuzzJson::Float."""

    def __init__(self, v):
        self.v = v


def fjson(e, v):
    """FuzzJson: Null, Bool, Int, Float, Str, Field, Array, Object (keys from FIELDS)."""
    if v is None:
        e.variant(0, 8)
    elif isinstance(v, bool):
        e.variant(1, 8).boolean(v)
    elif isinstance(v, int):
        e.variant(2, 8).i64(v)
    elif isinstance(v, Flt):
        e.variant(3, 8).f64(v.v)
    elif isinstance(v, str):
        e.variant(4, 8).string(v)
    elif isinstance(v, Field):
        e.variant(5, 8).u8(v.i)
    elif isinstance(v, list):
        e.variant(6, 8).vec(v, fjson)
    elif isinstance(v, dict):
        e.variant(7, 8).vec(list(v.items()),
                            lambda e, kv: (e.u8(FIELDS.index(kv[0])), fjson(e, kv[1])))
    else:
        raise TypeError(v)


def request(method, path, query=None, auth=1, headers=(), ct=0, body=None):
    """FuzzRequest. auth: 0 none, 1 the tenant's key, 2 the admin token, 3 bad Basic.
    ct: 0 application/json, 1 application/merge-patch+json, 2 none.
    body: None, ('raw', text) or ('json', value for fjson).
    Path segments: a route segment by name, `:customer` or `:account` for the fixture's ids
    (a first character U+0080..U+009F or U+00A0..U+00A9), anything else literally (its first
    character must then be U+00AA or above)."""
    e = Enc()
    e.u8(METHODS.index(method))
    segs = []
    for s in path.strip('/').split('/'):
        if s == ':customer':
            segs.append(chr(0x85).encode())
        elif s == ':account':
            segs.append(chr(0xA2).encode())
        elif s in SEGMENTS:
            segs.append(bytes([SEGMENTS.index(s)]))
        else:
            assert ord(s[0]) >= 170, s
            segs.append(s.encode('utf-8'))
    e.vec(segs, lambda e, b: e.string(b))
    e.option(query, lambda e, q: e.string(q))
    e.u8(auth)
    e.vec(list(headers), lambda e, h: (e.u8(HEADERS.index(h[0])), e.string(h[1])))
    e.u8(ct)
    if body is None:
        e.variant(0, 3)
    elif body[0] == 'raw':
        e.variant(1, 3).string(body[1])
    else:
        e.variant(2, 3)
        fjson(e, body[1])
    return e.build()


def engine_input(e, x):
    """Input: WriteCustomer{push}, UpdateCustomer, WriteInvoice{lines}, WriteExpenseNewVendor,
    Due, Report{which, answer, retry_after}, Tick{seconds}. A report's answer % 6: 0 and 1 are
    201, 2 is 503, 3 is 400, 4 a connection reset, 5 a refused address (permanent)."""
    k = x[0]
    if k == 'customer':
        e.variant(0, 7).boolean(x[1])
    elif k == 'update':
        e.variant(1, 7)
    elif k == 'invoice':
        e.variant(2, 7).u8(x[1])
    elif k == 'expense':
        e.variant(3, 7)
    elif k == 'due':
        e.variant(4, 7)
    elif k == 'report':
        e.variant(5, 7).u8(x[1]).u8(x[2])
        e.option(x[3], lambda e, v: e.u8(v))
    elif k == 'tick':
        e.variant(6, 7).u16(x[1])
    else:
        raise ValueError(k)


def raw(text):
    return ('raw', text)


MAX = 9223372036854775807
MIN = -9223372036854775808

REQUEST = [
    # JSON syntax: escapes, surrogates, nesting past serde_json's limit, BOM, trailing data.
    ('seed-json-escapes', dict(method='POST', path='/api/customers', body=raw(
        '{"name":"Acme \\u00e9\\"\\\\\\/\\b\\f\\n\\r\\t \\ud83d\\ude00","email":"a@b.co",'
        '"contactName":"\\u0000"}'))),
    ('seed-json-lone-surrogate', dict(method='POST', path='/api/customers',
                                      body=raw('{"name":"\\ud800x"}'))),
    ('seed-json-bad-escape', dict(method='POST', path='/api/vendors',
                                  body=raw('{"name":"\\x41\\u12"}'))),
    ('seed-json-deep-array', dict(method='POST', path='/api/customers',
                                  body=raw('{"name":' + '[' * 200 + ']' * 200 + '}'))),
    ('seed-json-deep-object', dict(method='PATCH', path='/api/customers/:customer',
                                   body=raw('{"a":' * 140 + '1' + '}' * 140))),
    ('seed-json-duplicate-keys-bom', dict(method='POST', path='/api/customers',
                                          body=raw('\ufeff{"name":"a","name":"b"}'))),
    ('seed-json-truncated', dict(method='POST', path='/api/invoices',
                                 body=raw('{"number":"INV-1","lines":[{"quantity":1.'))),
    ('seed-json-trailing', dict(method='POST', path='/api/accounts',
                                body=raw('{"code":"4000","name":"Sales","type":"income"} x'))),
    ('seed-json-structured-invoice', dict(
        method='POST', path='/api/invoices', headers=[('X-Sync-Data', 'push')], body=('json', {
            'number': Field('INV-1'), 'customerId': 'c1', 'issueDate': Field('2026-11-01'),
            'dueDate': Field('2026-02-30'), 'currency': Field('EUR'),
            'lines': [{'description': 'x', 'quantity': Flt(1.5), 'unitAmount': 100,
                       'taxAmount': -1}]}))),
    # Numbers: out of range, overflowing totals, decimals where integers are required.
    ('seed-numbers-huge', dict(
        method='POST', path='/api/invoices', headers=[('X-Sync-Data', 'push')], body=raw(
            '{"number":"INV-9","customerId":"x","issueDate":"2026-11-01","dueDate":"2026-11-30",'
            '"currency":"EUR","lines":[{"description":"x","quantity":1e309,'
            '"unitAmount":9223372036854775808}]}'))),
    ('seed-numbers-overflow-total', dict(method='POST', path='/api/invoices', body=raw(
        '{"number":"INV-9","customerId":"x","issueDate":"2026-11-01","dueDate":"2026-11-30",'
        '"currency":"EUR","lines":[{"description":"x","quantity":999999999.999999,'
        '"unitAmount":9223372036854775807,"taxAmount":-9223372036854775808}]}'))),
    ('seed-numbers-precision', dict(method='POST', path='/api/expenses', body=raw(
        '{"vendor":{"name":"V"},"date":"2026-11-01","currency":"JPY",'
        '"lines":[{"description":"x","amount":1.0000000000000002}]}'))),
    # Dates.
    ('seed-dates-invalid', dict(method='POST', path='/api/invoices', body=raw(
        '{"number":"INV-9","customerId":"x","issueDate":"2026-02-29","dueDate":"2025-13-01",'
        '"currency":"EUR","lines":[]}'))),
    ('seed-dates-leap-expense', dict(
        method='POST', path='/api/expenses',
        headers=[('X-Sync-Data', 'push'), ('X-Sync-Sources', 'quickbooks')], body=raw(
            '{"vendor":{"name":"New Vendor"},"date":"2024-02-29","currency":"EUR",'
            '"lines":[{"description":"x","amount":5}]}'))),
    ('seed-dates-bank-preload', dict(method='POST', path='/api/bank-transactions', body=raw(
        '[{"bankAccount":"main","date":"0000-01-01","amount":-100,"currency":"EUR",'
        '"description":"x","externalId":"bt-1"},{"bankAccount":"main",'
        '"date":"9999-12-31T00:00:00Z","amount":1,"currency":"eur","description":"y"}]'))),
    # Merge patches on the fixture's customer.
    ('seed-merge-patch', dict(
        method='PATCH', path='/api/customers/:customer', ct=1, headers=[('If-Match', '"1"')],
        body=raw('{"email":null,"billingAddress":{"line1":"1 Main St","country":"US",'
                 '"region":null},"phone":"+1 555"}'))),
    ('seed-merge-patch-weak-etag', dict(
        method='PATCH', path='/api/customers/:customer', ct=1,
        headers=[('If-Match', 'W/"1"'), ('X-Sync-Data', 'push')], body=raw('{"phone":null}'))),
    ('seed-merge-patch-not-object', dict(method='PATCH', path='/api/customers/:customer', ct=1,
                                         body=raw('[1,{"name":"x"}]'))),
    ('seed-patch-server-fields', dict(
        method='PATCH', path='/api/customers/:customer', ct=1, headers=[('If-Match', '1')],
        body=raw('{"id":"other","version":99,"createdAt":"x","updatedAt":"y","name":"Acme"}'))),
    # Header values: CR/LF and NUL, lists with empty entries, parameters, lengths.
    ('seed-header-crlf', dict(
        method='POST', path='/api/customers',
        headers=[('X-Tracking-ID', 'trk\r\nX-Injected: 1'), ('Idempotency-Key', 'k\n\u0000')],
        body=raw('{"name":"x"}'))),
    ('seed-header-sync-sources', dict(
        method='POST', path='/api/invoices',
        headers=[('X-Sync-Data', 'PUSH '), ('X-Sync-Sources', 'quickbooks,,hubspot, nosuch')],
        body=raw('{}'))),
    ('seed-header-content-type-params', dict(
        method='POST', path='/api/customers', ct=2,
        headers=[('Content-Type', 'application/json; charset=latin1; x="\r\n"')],
        body=raw('{"name":"x"}'))),
    ('seed-header-idempotency-long', dict(method='POST', path='/api/vendors',
                                          headers=[('Idempotency-Key', 'k' * 300)],
                                          body=raw('{"name":"v"}'))),
    # Queries and paths.
    ('seed-query-paging', dict(method='GET', path='/api/invoices',
                               query='page=-1&pageSize=18446744073709551616&status=%00&x=%zz')),
    ('seed-query-list', dict(method='GET', path='/api/customers', query='pageSize=0&page=1&page=2')),
    ('seed-query-encoded', dict(method='GET', path='/api/vendors',
                                query='page=%31&pageSize=%2B5&&=&page')),
    ('seed-sync-lookup', dict(method='GET', path='/api/syncs/\u00ff-not-a-uuid',
                              headers=[('X-Tracking-ID', '\u00e9')])),
    ('seed-literal-segment', dict(method='GET', path='/api/customers/\u00ff%2F..%00')),
    ('seed-unknown-method', dict(method='BREW', path='/healthz')),
    ('seed-payment-on-customer', dict(method='POST', path='/api/invoices/:customer/payments',
                                      body=raw('{"amount":1,"date":"2026-11-02"}'))),
    # Credentials and the admin API.
    ('seed-auth-bad-basic', dict(method='GET', path='/api/customers/:customer', auth=3)),
    ('seed-auth-none-admin-route', dict(method='DELETE', path='/admin/accounts/:account', auth=0)),
    ('seed-admin-account', dict(method='POST', path='/admin/accounts', auth=2,
                                body=raw('{"domain":"EXAMPLE.com.","writeEnabled":"yes"}'))),
    ('seed-admin-webhook-urls', dict(
        method='POST', path='/admin/accounts/:account/webhooks', auth=2, body=raw(
            '{"url":"http://0x7f.1:80/x","events":["customer.created","*",""],'
            '"username":"u:p","password":"\\u0000"}'))),
    ('seed-admin-connection-idn', dict(
        method='POST', path='/admin/accounts/:account/connections', auth=2, body=raw(
            '{"app":"quickbooks","type":"accounting",'
            '"pushUrl":"https://b\\u00fccher.example/push"}'))),
    ('seed-admin-connection-ipv6', dict(
        method='POST', path='/admin/accounts/:account/connections', auth=2, body=raw(
            '{"app":"hubspot","type":"crm","pushUrl":"http://[::ffff:127.0.0.1]:8080/push",'
            '"objects":["customer","nosuch"]}'))),
    ('seed-admin-api-key-scopes', dict(
        method='POST', path='/admin/accounts/:account/api-keys', auth=2,
        body=raw('{"scopes":["api.read","api.write","api.*",1]}'))),
    ('seed-admin-deliveries-paged', dict(method='GET', path='/admin/accounts/:account/webhooks',
                                         auth=2, query='page=1&pageSize=100')),
]

DEEP = 1
for _ in range(18):
    DEEP = [DEEP]

VALIDATORS = [
    ('seed-invoice-valid', {
        'number': 'INV-2', 'customerId': 'c1', 'issueDate': '2026-11-01',
        'dueDate': '2026-11-30', 'currency': 'EUR',
        'lines': [{'description': 'a', 'quantity': Flt(1.5), 'unitAmount': 333,
                   'accountId': 'a1', 'taxAmount': 7},
                  {'description': 'b', 'quantity': Flt(0.000001), 'unitAmount': MAX}]}),
    ('seed-invoice-overflow', {
        'number': 'INV-3', 'customerId': 'c1', 'issueDate': '2026-11-01',
        'dueDate': '2026-11-01', 'currency': 'EUR',
        'lines': [{'description': 'a', 'quantity': Flt(1e300), 'unitAmount': MIN},
                  {'description': 'b', 'quantity': 2, 'unitAmount': MAX, 'taxAmount': MAX}]}),
    ('seed-invoice-dates', {
        'number': 'INV-4', 'customerId': 'c1', 'issueDate': '2024-02-29',
        'dueDate': '2026-02-29', 'currency': 'usd',
        'lines': [{'description': '', 'quantity': Flt(1.0000005), 'unitAmount': 1}],
        'status': 'void', 'total': 1, 'balance': 0, 'amountPaid': -1}),
    ('seed-customer-address', {
        'name': 'Acme \u00e9\u0000\ud7ff', 'email': 'a@b', 'phone': '\r\n',
        'billingAddress': {'line1': 'x', 'country': 'usa'}, 'id': 'x', 'version': 3}),
    ('seed-account-code-taken', {'code': '4000', 'name': 'Sales', 'type': 'income',
                                 'active': None, 'description': 'x' * 300}),
    ('seed-expense-new-vendor', {
        'vendor': {'name': 'V', 'email': 'v@x.co'}, 'date': '2026-11-01', 'currency': 'EUR',
        'lines': [{'description': 'x', 'amount': 5, 'accountId': 'a1'},
                  {'description': 'y', 'amount': MAX}]}),
    ('seed-bank-transactions', [
        {'bankAccount': 'main', 'date': '2026-11-01', 'amount': -100, 'currency': 'EUR',
         'description': 'x', 'externalId': 'bt-1'},
        {'bankAccount': 'main', 'date': '2026-13-01', 'amount': Flt(0.5), 'currency': 'EUR',
         'description': 'y', 'externalId': 'bt-2'}]),
    ('seed-payment', {'amount': 100, 'date': '2026-11-02', 'reference': 'r', 'memo': None}),
    ('seed-deep-nesting', {'billingAddress': DEEP}),
    ('seed-merge-patch-nulls', {'name': None, 'billingAddress': {'line1': None, 'country': 'US'},
                                'lines': [None, {'amount': None}]}),
    ('seed-floats', [Flt(float('nan')), Flt(float('inf')), Flt(-0.0), Flt(5e-324),
                     Flt(1.7976931348623157e308), MIN]),
]

ENGINE = [
    ('seed-push-retry-after', [('customer', True), ('due',), ('report', 0, 2, 7), ('tick', 8),
                               ('due',), ('report', 0, 0, None)]),
    ('seed-invoice-permanent-failure', [('invoice', 3), ('due',), ('report', 0, 3, None),
                                        ('report', 0, 5, None), ('due',),
                                        ('report', 1, 4, None)]),
    ('seed-webhook-failing-budget', [('customer', True)] + [
        x for _ in range(5)
        for x in (('due',), ('report', 0, 2, None), ('report', 0, 2, 0), ('tick', 600))]),
    ('seed-stale-reports', [('update',), ('due',), ('tick', 65535), ('due',),
                            ('report', 0, 0, None), ('report', 1, 0, None),
                            ('report', 0, 1, 255)]),
    ('seed-expense-and-no-push', [('expense',), ('customer', False), ('due',),
                                  ('report', 3, 4, None), ('tick', 1), ('due',),
                                  ('report', 0, 0, None)]),
]


def save(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def main():
    for name, kw in REQUEST:
        save('request', name, request(**kw))
    for name, v in VALIDATORS:
        e = Enc()
        fjson(e, v)
        save('validators', name, e.build())
    for name, seq in ENGINE:
        save('engine', name, Enc().vec(seq, engine_input).build())
    print(f'{len(REQUEST)} request, {len(VALIDATORS)} validators, {len(ENGINE)} engine seeds')


if __name__ == '__main__':
    main()
