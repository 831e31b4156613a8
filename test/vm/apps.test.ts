/**
 * Unmodified programs over SG-IOV sockets (issue 12): iperf3, NPtcp, nginx
 * with curl and wrk, each under sgiov-run (libsgiov-preload.so), in one VM
 * boot. For each program the test checks its own result (bytes, checksums,
 * HTTP status), that the device carried the traffic (the emulator's
 * BYTES_MOVED register, read by the guest's module around each program,
 * rose by at least the bytes the program reports; and the emulator's
 * counters at the end of the run cover all of them), and that the guest
 * kernel's TCP did not (/proc/net/snmp InSegs + OutSegs around it).
 * A connect nobody listens for fails in curl as on the kernel's TCP.
 * Bad input: a static binary is refused by sgiov-run with a clear message;
 * an option the preload does not support gets the errno Linux gives (the
 * same as the kernel's, checked side by side) and a debug line.
 * Needs the setup and a build, like the other VM tests.
 */
import { mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunDir } from '../../qemu/vm.js';
import { runInVm, type RunResult } from '../../qemu/run.js';
import { FEW_SEGMENTS, field, GUEST_HELPERS, iperfBytes, num, results } from '../support/guest-apps.js';

/** The guest script: `RESULT name k=v ...` lines; dev= and segs= are the device's bytes and the kernel's TCP segments during that program. */
const SCRIPT = `#!/bin/sh
set -u
${GUEST_HELPERS}
# iperf3, server and client under sgiov-run, 128 KiB writes, over loopback (server on [::]).
mark
sgiov-run iperf3 -s -1 -p 5201 >/tmp/iperf-s.log 2>&1 &
srv=$!
sleep 1
sgiov-run iperf3 -c 127.0.0.1 -p 5201 -t 2 -l 128K -J >/tmp/iperf.json 2>/tmp/iperf-c.err
rc=$?
reap $srv
result iperf3 rc=$rc $(delta) json=$(tr -d '\\n\\t' </tmp/iperf.json)

# NPtcp, both ends, up to 4 KiB.
mark
(cd /tmp && exec sgiov-run NPtcp >/tmp/np-r.log 2>&1) &
srv=$!
sleep 1
(cd /tmp && sgiov-run NPtcp -h 127.0.0.1 -u 4096 -o /tmp/np.out >/tmp/np-t.log 2>&1)
rc=$?
reap $srv
result nptcp rc=$rc $(delta) rows=$(wc -l </tmp/np.out) sizes=$(awk '{ s += $1 } END { print s }' /tmp/np.out) last=$(tail -n 1 /tmp/np.out | awk '{ print $1 "," $2 }')

# nginx (sendfile) on loopback and on $SGIOV_ADDR, both on port 8080: two listeners, one port.
mkdir -p /tmp/www
head -c 1048576 /dev/urandom >/tmp/www/blob
cat >/tmp/nginx.conf <<CONF
worker_processes 1;
error_log /tmp/nginx-error.log;
pid /tmp/nginx.pid;
events { worker_connections 64; }
http { access_log off; sendfile on; server { listen 127.0.0.1:8080; listen $SGIOV_ADDR:8080; root /tmp/www; } }
CONF
sgiov-run nginx -c /tmp/nginx.conf
result nginx rc=$?
mark
code=$(sgiov-run curl -sS -o /tmp/blob.got -w '%{http_code}' http://127.0.0.1:8080/blob)
result curl rc=$? http=$code $(delta) sent=$(sha256sum </tmp/www/blob | cut -c1-64) got=$(sha256sum </tmp/blob.got | cut -c1-64)
mark
result addr addr=$SGIOV_ADDR $(sgiov-run curl -sS -o /dev/null -w 'http=%{http_code} local=%{local_ip} remote=%{remote_ip} size=%{size_download}' http://$SGIOV_ADDR:8080/blob) $(delta)
mark
sgiov-run wrk -t1 -c2 -d2s http://127.0.0.1:8080/blob >/tmp/wrk.out 2>&1
rc=$?
result wrk rc=$rc $(delta) $(awk '/requests in/ { print "requests=" $1 } /Non-2xx/ { print "non2xx=" $NF } /Socket errors/ { print "sockerr=1" }' /tmp/wrk.out)
kill $(cat /tmp/nginx.pid)

# A connect nobody listens for (non-blocking connect, then SO_ERROR): curl's own error, kernel and SG-IOV alike.
curl -sS -o /dev/null http://127.0.0.1:9/ 2>/dev/null
result refusedkernel rc=$?
SGIOV_PRELOAD_DEBUG=1 sgiov-run curl -sS -o /dev/null http://127.0.0.1:9/ 2>/tmp/refused.err
result refusedsgiov rc=$? debug=$(grep -c 'connect fd [0-9]* 127.0.0.1:9: sgiov' /tmp/refused.err)

# Bad input: a static binary; an option the preload does not support (kernel and SG-IOV side by side).
out=$(sgiov-run /bin/busybox true 2>&1)
result static rc=$? msg=$(echo "$out" | tr ' ' '_')
result optkernel $(sgiov-sockopt 6 9999)
result optsgiov $(SGIOV_PRELOAD_DEBUG=1 sgiov-run sgiov-sockopt 6 9999 2>/tmp/opt.err) debug=$(grep -c 'name 9999: not supported on SG-IOV: ENOPROTOOPT' /tmp/opt.err)
exit 0
`;

let dir: RunDir;
let run: RunResult;
let out = '';

beforeAll(async () => {
  dir = new RunDir('sgiov-apps-');
  mkdirSync(dir.file('t'));
  writeFileSync(dir.file('t/apps.sh'), SCRIPT);
  chmodSync(dir.file('t/apps.sh'), 0o755);
  run = await runInVm({
    command: ['/opt/t/apps.sh'],
    copies: [{ host: dir.file('t'), guest: '/opt/t' }],
    smp: 2,
    memMiB: 1024,
    out: (c) => {
      out += c.toString();
    },
    info: () => {},
    timeoutS: 900,
  });
  process.stderr.write(out.replace(/json=.*/, 'json=...'));
}, 960_000);

afterAll(() => {
  dir?.remove();
});

describe.sequential('unmodified programs over SG-IOV sockets (sgiov-run)', () => {
  it('iperf3 (128 KiB writes): its bytes went through the device, not the kernel TCP', () => {
    expect(run.exitCode).toBe(0);
    const r = results(out).get('iperf3');
    expect(field(r, 'rc')).toBe('0');
    const { sent, received: bytes } = iperfBytes(r);
    expect(bytes).toBeGreaterThan(1 << 20);
    expect(sent).toBeGreaterThanOrEqual(bytes);
    expect(num(r, 'dev')).toBeGreaterThanOrEqual(bytes);
    expect(num(r, 'segs')).toBeLessThan(FEW_SEGMENTS);
  });

  it('NPtcp, both ends: every size round-tripped through the device', () => {
    const r = results(out).get('nptcp');
    expect(field(r, 'rc')).toBe('0');
    expect(num(r, 'rows')).toBeGreaterThan(10);
    const last = field(r, 'last')!.split(',').map(Number);
    expect(last[0]).toBeGreaterThanOrEqual(4093);
    expect(last[1]).toBeGreaterThan(0);
    // Each row is at least one message of its size each way.
    expect(num(r, 'dev')).toBeGreaterThanOrEqual(2 * num(r, 'sizes'));
    expect(num(r, 'segs')).toBeLessThan(FEW_SEGMENTS);
  });

  it('nginx serves a file (sendfile) that curl fetches whole, on loopback and on $SGIOV_ADDR (one port, two listeners)', () => {
    const m = results(out);
    expect(field(m.get('nginx'), 'rc')).toBe('0');
    const c = m.get('curl');
    expect(field(c, 'rc')).toBe('0');
    expect(field(c, 'http')).toBe('200');
    expect(field(c, 'got')).toMatch(/^[0-9a-f]{64}$/);
    expect(field(c, 'got')).toBe(field(c, 'sent'));
    expect(num(c, 'dev')).toBeGreaterThanOrEqual(1 << 20);
    expect(num(c, 'segs')).toBeLessThan(FEW_SEGMENTS);
    const a = m.get('addr');
    expect(field(a, 'addr')).toBe('10.77.0.1');
    expect(field(a, 'http')).toBe('200');
    expect(field(a, 'local')).toBe('10.77.0.1');
    expect(field(a, 'remote')).toBe('10.77.0.1');
    expect(num(a, 'size')).toBe(1 << 20);
    expect(num(a, 'dev')).toBeGreaterThanOrEqual(1 << 20);
    expect(num(a, 'segs')).toBeLessThan(FEW_SEGMENTS);
  });

  it('wrk against nginx: requests, no errors, all through the device', () => {
    const w = results(out).get('wrk');
    expect(field(w, 'rc')).toBe('0');
    const requests = num(w, 'requests');
    expect(requests).toBeGreaterThan(0);
    expect(field(w, 'non2xx')).toBeUndefined();
    expect(field(w, 'sockerr')).toBeUndefined();
    expect(num(w, 'dev')).toBeGreaterThanOrEqual(requests * (1 << 20));
    expect(num(w, 'segs')).toBeLessThan(FEW_SEGMENTS);
  });

  it("the emulator's own counters at the end cover every program's bytes", () => {
    const m = results(out);
    const sum = ['iperf3', 'nptcp', 'curl', 'addr', 'wrk'].reduce((s, k) => s + num(m.get(k), 'dev'), 0);
    expect(sum).toBeGreaterThan(0);
    expect(run.device.bytesMoved as number).toBeGreaterThanOrEqual(sum);
    expect(run.device.socketsCreated as number).toBeGreaterThanOrEqual(10);
  });

  it('a connect to a port nobody listens on fails as on the kernel (curl exit 7: ECONNREFUSED through SO_ERROR)', () => {
    const m = results(out);
    expect(field(m.get('refusedkernel'), 'rc')).toBe('7');
    expect(field(m.get('refusedsgiov'), 'rc')).toBe('7');
    expect(num(m.get('refusedsgiov'), 'debug')).toBeGreaterThanOrEqual(1); // it was the device's connect
  });

  it('refuses a static binary with a clear message', () => {
    const s = results(out).get('static');
    expect(field(s, 'rc')).toBe('126');
    expect(field(s, 'msg')).toContain('statically_linked');
    expect(field(s, 'msg')).toContain('LD_PRELOAD_cannot_act');
  });

  it("gives an unsupported option Linux's errno (as the kernel does) and a debug line", () => {
    const m = results(out);
    expect(m.get('optkernel')).toBe('set=ENOPROTOOPT get=ENOPROTOOPT sock=1');
    const s = m.get('optsgiov');
    expect(s).toContain('set=ENOPROTOOPT get=ENOPROTOOPT sock=1');
    expect(num(s, 'debug')).toBe(2); // setsockopt and getsockopt each logged
  });
});
