/**
 * `sgiov vm` end to end, through the CLI as a user runs it: real programs of
 * the guest's glibc userland (iperf3, nginx with curl and wrk, NPtcp, openssl)
 * on the guest kernel's TCP over loopback, a program bound to $SGIOV_ADDR, a
 * script put in the guest with --copy, the command's exit status, the --json
 * line with the emulator's counters (the device tool sgiov-ping in the same
 * run makes them move), and --packages with one small extra package (jq).
 * Two boots in all. Bad input (a missing --copy source, an unknown package)
 * ends with status 125 and a message, without a boot.
 * Needs the setup and a build, like the other VM tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../emulator/util/paths.js';
import { RunDir, stopProcess } from '../../qemu/vm.js';

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** `sgiov vm ARGS...` as a separate process; resolves when it exits. */
function sgiovVm(args: string[], ms: number): Promise<CliRun> {
  const p = spawn(process.execPath, [join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js'), 'vm', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(p);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const t = setTimeout(() => void stopProcess(p, 5000), ms);
  return new Promise((resolve) =>
    p.on('close', (code) => {
      clearTimeout(t);
      running.delete(p);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** The guest script: each program's own result as `RESULT name k=v ...` lines, then exit 3. */
const APPS = `#!/bin/sh
set -u
result() { echo "RESULT $*"; }
# The device: a few round trips through /dev/sgiov move the counters.
result ping $(sgiov-ping -c 20 -s 4096 | grep '^ping ')
# iperf3, 128 KiB writes, over loopback.
iperf3 -s -1 -B 127.0.0.1 -p 5201 >/tmp/iperf-s.log 2>&1 &
sleep 0.5
iperf3 -c 127.0.0.1 -p 5201 -t 1 -l 128K -J >/tmp/iperf.json
result iperf3 rc=$? json=$(tr -d '\\n\\t' </tmp/iperf.json)
# nginx serving a file (sendfile) on loopback and on $SGIOV_ADDR; curl and wrk fetch it.
mkdir -p /tmp/www
head -c 1048576 /dev/urandom >/tmp/www/blob
cat >/tmp/nginx.conf <<CONF
worker_processes 1;
error_log /tmp/nginx-error.log;
pid /tmp/nginx.pid;
events { worker_connections 64; }
http { access_log off; sendfile on; server { listen 127.0.0.1:8080; listen $SGIOV_ADDR:8081; root /tmp/www; } }
CONF
nginx -c /tmp/nginx.conf
result nginx rc=$?
code=$(curl -sS -o /tmp/blob.got -w '%{http_code}' http://127.0.0.1:8080/blob)
result curl rc=$? http=$code sent=$(sha256sum </tmp/www/blob | cut -c1-64) got=$(sha256sum </tmp/blob.got | cut -c1-64)
result addr addr=$SGIOV_ADDR $(curl -sS -o /dev/null -w 'http=%{http_code} local=%{local_ip} remote=%{remote_ip}' http://$SGIOV_ADDR:8081/blob)
result wrk $(wrk -t1 -c2 -d1s http://127.0.0.1:8080/blob | awk '/requests in/ { print "requests=" $1 } /Non-2xx/ { print "non2xx=" $NF }')
kill $(cat /tmp/nginx.pid)
# NPtcp, both ends, up to 4 KiB.
(cd /tmp && NPtcp >/tmp/np-r.log 2>&1 &)
sleep 0.5
(cd /tmp && NPtcp -h 127.0.0.1 -u 4096 -o /tmp/np.out >/tmp/np-t.log 2>&1)
result nptcp rc=$? rows=$(wc -l </tmp/np.out) last=$(tail -n 1 /tmp/np.out | awk '{ print $1 "," $2 }')
result openssl $(openssl version | cut -d' ' -f1,2 | tr ' ' '=')
exit 3
`;

let dir: RunDir;
let apps: CliRun;

const results = (out: string): Map<string, string> => {
  const m = new Map<string, string>();
  for (const l of out.split('\n')) {
    const r = /^RESULT (\S+) (.*)$/.exec(l);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
};
const field = (s: string | undefined, k: string): string | undefined =>
  new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(s ?? '')?.[1];

beforeAll(() => {
  dir = new RunDir('sgiov-vmrun-');
  mkdirSync(dir.file('t'));
  writeFileSync(dir.file('t/apps.sh'), APPS);
  chmodSync(dir.file('t/apps.sh'), 0o755);
});

afterAll(async () => {
  for (const p of running) await stopProcess(p, 5000);
  dir?.remove();
});

describe.sequential('sgiov vm', () => {
  it('runs iperf3, nginx + curl + wrk, NPtcp and openssl from a --copy script; exit status and --json', async () => {
    const before = readdirSync(tmpdir()).filter((f) => f.startsWith('sgiov-vm-')).length;
    apps = await sgiovVm(
      ['--smp', '2', '--mem', '1G', '--json', '--copy', `${dir.file('t')}:/opt/t`, '--', '/opt/t/apps.sh'],
      600_000,
    );
    process.stderr.write(apps.stdout.replace(/json=.*/, 'json=...') + apps.stderr);
    // The script's own status, not the runner's.
    expect(apps.code).toBe(3);
    const r = results(apps.stdout);

    const iperf = JSON.parse(/ json=(.*)$/.exec(r.get('iperf3') ?? '')?.[1] ?? '{}') as {
      end?: { sum_received?: { bytes: number }; sum_sent?: { bytes: number } };
    };
    expect(field(r.get('iperf3'), 'rc')).toBe('0');
    expect(iperf.end?.sum_received?.bytes).toBeGreaterThan(1 << 20);

    expect(field(r.get('nginx'), 'rc')).toBe('0');
    const curl = r.get('curl');
    expect(field(curl, 'rc')).toBe('0');
    expect(field(curl, 'http')).toBe('200');
    expect(field(curl, 'got')).toMatch(/^[0-9a-f]{64}$/);
    expect(field(curl, 'got')).toBe(field(curl, 'sent'));
    expect(Number(field(r.get('wrk'), 'requests'))).toBeGreaterThan(0);
    expect(field(r.get('wrk'), 'non2xx')).toBeUndefined();

    // The plan's address for node 0, VM 0, bound by nginx and used by curl.
    const addr = r.get('addr');
    expect(field(addr, 'addr')).toBe('10.77.0.1');
    expect(field(addr, 'http')).toBe('200');
    expect(field(addr, 'local')).toBe('10.77.0.1');
    expect(field(addr, 'remote')).toBe('10.77.0.1');

    const np = r.get('nptcp');
    expect(field(np, 'rc')).toBe('0');
    expect(Number(field(np, 'rows'))).toBeGreaterThan(10);
    expect(Number(field(np, 'last')?.split(',')[0])).toBeGreaterThanOrEqual(4093);
    expect(Number(field(np, 'last')?.split(',')[1])).toBeGreaterThan(0);
    expect(field(r.get('openssl'), 'OpenSSL')).toMatch(/^3\./);

    // --json: the last line, with the counters the device tool moved.
    const last = apps.stdout.trimEnd().split('\n').pop()!;
    const j = JSON.parse(last) as { exitCode: number; seconds: number; device: Record<string, number> };
    expect(j.exitCode).toBe(3);
    expect(j.seconds).toBeGreaterThan(0);
    const ping = r.get('ping');
    expect(field(ping, 'errors')).toBe('0');
    expect(j.device.socketsCreated).toBeGreaterThanOrEqual(2);
    expect(j.device.msgsMoved).toBeGreaterThanOrEqual(40);
    expect(j.device.bytesMoved).toBeGreaterThanOrEqual(40 * 4096);
    // The run's files are gone.
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('sgiov-vm-')).length).toBeLessThanOrEqual(before);
  }, 620_000);

  it('installs an extra package with --packages and passes a failing status on', async () => {
    const r = await sgiovVm(
      ['--packages', 'jq', '--', 'sh', '-c', 'echo \'{"a": 41}\' | jq ".a + 1"; exit 5'],
      600_000,
    );
    process.stderr.write(r.stdout + r.stderr);
    expect(r.stdout).toBe('42\n');
    expect(r.code).toBe(5);
  }, 620_000);

  it('ends with 125 and a message for a --copy source that does not exist', async () => {
    const r = await sgiovVm(['--copy', `${dir.file('nope')}:/opt/x`, '--', 'true'], 60_000);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`${dir.file('nope')} does not exist`);
  }, 70_000);

  it('ends with 125 and a message for a package apt does not know', async () => {
    const r = await sgiovVm(['--packages', 'no-such-package-sgiov', '--', 'true'], 120_000);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('no such package in the trixie tree: no-such-package-sgiov');
  }, 130_000);

  it('refuses a command together with --shell, and no command at all (usage, status 2)', async () => {
    expect((await sgiovVm(['--shell', '--', 'true'], 30_000)).code).toBe(2);
    const r = await sgiovVm([], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('a COMMAND is required');
  }, 70_000);
});
