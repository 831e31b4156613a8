/**
 * The sgiov CNI plugin (/opt/cni/bin/sgiov) in a guest, driven as a runtime
 * drives it (Debian has no cnitool): CNI_* in the environment, the request
 * configuration on stdin, derived here from the conflists the image ships
 * (guest-driver/cni/*.conflist) as the specification's section 3 says
 * (name and cniVersion from the list, runtimeConfig from the capabilities,
 * prevResult for CHECK and DEL, cni.dev/valid-attachments for GC). One boot.
 *
 * Checked: VERSION lists 1.1.0; STATUS; ADD gives a spec-shaped result, the
 * address (from the reference host-local) is on the interface in the netns,
 * the record is written; ADD twice, bad JSON, a missing field, an unknown
 * offload, a netns that does not exist each give the spec's error shape and
 * code; CHECK passes, and fails after DEL; DEL twice succeeds; GC removes a
 * stale attachment (record, tenant, address) and keeps the valid one; at
 * the end the emulator's `tenants` shows the one tenant left, with the
 * weight and cap the runtime gave. sgiov-tenant-keys in the same boot: two
 * tenants made with different keys through the module's ioctls, each reads
 * its own messages and not the other's. Needs the setup and a build.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../emulator/util/paths.js';
import { runInVm } from '../../qemu/run.js';
import { controlCall, RunDir } from '../../qemu/vm.js';

type Json = Record<string, unknown>;

/** The request configuration of a conflist's first plugin, as a runtime derives it. */
function request(conflist: string, runtime: Json = {}, extra: Json = {}): Json {
  const list = JSON.parse(readFileSync(join(repoRoot(), 'guest-driver', 'cni', conflist), 'utf8')) as Json;
  const plugin = { ...((list.plugins as Json[])[0] as Json) };
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
  delete plugin.capabilities;
  const runtimeConfig = Object.fromEntries(Object.entries(runtime).filter(([k]) => caps[k]));
  return { cniVersion: list.cniVersion, name: list.name, ...plugin, runtimeConfig, ...extra };
}

const A = 'ctr-a-0001';
const B = 'ctr-b-0002';
const C = 'ctr-c-0003';

/** The guest side: every plugin call's exit status and stdout as one RESULT line. */
const SCRIPT = `#!/bin/sh
set -u
export CNI_PATH=/usr/lib/cni:/opt/cni/bin
P=/opt/cni/bin/sgiov
T=/opt/t
# cni NAME COMMAND CONTAINERID NETNS IFNAME CONFIG-FILE: RESULT NAME rc=.. out=<one line>
cni() {
  out=$(CNI_COMMAND=$2 CNI_CONTAINERID=$3 CNI_NETNS=$4 CNI_IFNAME=$5 $P <$6 2>/tmp/$1.err)
  echo "RESULT $1 rc=$? out=$(printf '%s' "$out" | tr -d '\\n')"
}
# with_prev CONFIG RESULT: the configuration with prevResult (the configs are one line, ending in '}')
with_prev() { c=$(cat "$1"); printf '%s' "\${c%\\}},\\"prevResult\\":$2}"; }
ino() { stat -L -c %i "$1"; }
ip netns add a && ip netns add b && ip netns add c
echo "RESULT netns rc=$?"
cni version VERSION x x x $T/version.json
cni status STATUS x x x $T/a.json
export CNI_ARGS=SGIOV_WEIGHT=2
cni add-a ADD ${A} /run/netns/a eth0 $T/a.json
unset CNI_ARGS
add_a=$(printf '%s' "$out" | tr -d '\\n')
echo "RESULT addr-a $(ip -n a -br addr show dev eth0 | tr -s ' ')"
echo "RESULT record-a $(tr -d '\\n ' </run/sgiov/netns/$(ino /run/netns/a).json)"
echo "RESULT ipam $(ls /run/cni/sgiov-ipam/sgiov | grep -v -e lock -e last_reserved | tr '\\n' ' ')"
cni add-a-again ADD ${A} /run/netns/a eth0 $T/a.json
cni add-b ADD ${B} /run/netns/b eth0 $T/b.json
add_b=$(printf '%s' "$out" | tr -d '\\n')
echo "RESULT record-b $(tr -d '\\n ' </run/sgiov/netns/$(ino /run/netns/b).json)"
with_prev $T/a.json "$add_a" >/tmp/check-a.json
cni check-a CHECK ${A} /run/netns/a eth0 /tmp/check-a.json
cni bad-json ADD ctr-x-1 /run/netns/c eth0 $T/bad.json
cni no-name ADD ctr-x-2 /run/netns/c eth0 $T/no-name.json
cni bad-offload ADD ctr-x-3 /run/netns/c eth0 $T/bad-offload.json
cni no-netns ADD ctr-x-4 /run/netns/nope eth0 $T/a.json
cni no-ifname ADD ctr-x-5 /run/netns/c "" $T/a.json
with_prev $T/b.json "$add_b" >/tmp/check-b.json
cni check-b CHECK ${B} /run/netns/b eth0 /tmp/check-b.json
with_prev $T/b.json "$add_b" >/tmp/del-b.json
cni del-b DEL ${B} /run/netns/b eth0 /tmp/del-b.json
cni del-b-again DEL ${B} /run/netns/b eth0 /tmp/del-b.json
echo "RESULT gone-b $(ls /run/sgiov/netns/ | grep -c "^$(ino /run/netns/b).json") $(ip -n b link show eth0 >/dev/null 2>&1; echo $?)"
with_prev $T/b.json "$add_b" >/tmp/check-b.json
cni check-b-after-del CHECK ${B} /run/netns/b eth0 /tmp/check-b.json
cni add-c ADD ${C} /run/netns/c eth0 $T/a.json
echo "RESULT before-gc $(ls /run/sgiov/netns | wc -l) $(ls /run/cni/sgiov-ipam/sgiov | grep -vc -e lock -e last_reserved)"
cni gc GC x x x $T/gc.json
echo "RESULT after-gc $(ls /run/sgiov/netns | wc -l) $(ls /run/cni/sgiov-ipam/sgiov | grep -vc -e lock -e last_reserved) $(ls /run/sgiov/netns/ | grep -c "^$(ino /run/netns/a).json")"
sgiov-tenant-keys >/tmp/keys.out 2>&1
echo "RESULT keys rc=$? $(grep -c 'ok=1' /tmp/keys.out) $(grep 'ok=0' /tmp/keys.out | tr '\n' ' ')"
cat /tmp/keys.out
exit 0
`;

let dir: RunDir;
const lines = new Map<string, string>();
let tenantsAtEnd: { id: number; tenant: string; weight: number; capGbps: number | null }[] = [];
let exitCode = -1;

const result = (name: string): { rc: number; out: Json } => {
  const l = lines.get(name) ?? '';
  const m = /^rc=(\d+) out=(.*)$/.exec(l);
  if (!m) throw new Error(`no result line for ${name}: '${l}'`);
  return { rc: Number(m[1]), out: m[2] ? (JSON.parse(m[2]) as Json) : {} };
};

/** The specification's error shape, with this code. */
function expectError(name: string, code: number): Json {
  const r = result(name);
  expect(r.rc, name).not.toBe(0);
  expect(Object.keys(r.out).sort(), name).toEqual(['cniVersion', 'code', 'details', 'msg']);
  expect(r.out.cniVersion, name).toBe('1.1.0');
  expect(r.out.code, `${name}: ${JSON.stringify(r.out)}`).toBe(code);
  return r.out;
}

beforeAll(async () => {
  dir = new RunDir('sgiov-cni-');
  const t = dir.file('t');
  mkdirSync(t);
  const put = (f: string, v: unknown): void =>
    writeFileSync(join(t, f), typeof v === 'string' ? v : JSON.stringify(v));
  put('version.json', { cniVersion: '1.1.0' });
  put('a.json', request('10-sgiov.conflist', { bandwidth: { ingressRate: 3e9, egressRate: 1e9 } }));
  put('b.json', request('20-sgiov-vxlan-ipsec.conflist'));
  put('bad.json', '{"cniVersion": "1.1.0", "name": ');
  const noName = request('10-sgiov.conflist');
  delete noName.name;
  put('no-name.json', noName);
  put('bad-offload.json', request('10-sgiov.conflist', {}, { offload: { compress: 'zstd' } }));
  put('gc.json', {
    ...request('10-sgiov.conflist'),
    'cni.dev/valid-attachments': [{ containerID: A, ifname: 'eth0' }],
  });
  put('cni.sh', SCRIPT);
  let out = '';
  const r = await runInVm({
    command: ['/bin/sh', '/opt/t/cni.sh'],
    copies: [{ host: t, guest: '/opt/t' }],
    out: (b) => (out += b.toString()),
    info: () => {},
    timeoutS: 900,
    beforeBoot: async (ctl) => {
      await controlCall(ctl, 'schedule', { accelerators: { rdma: 10, crypto: 5 } });
    },
    afterCommand: async (ctl) => {
      tenantsAtEnd = ((await controlCall(ctl, 'tenants')) as { tenants: typeof tenantsAtEnd }).tenants;
    },
  });
  exitCode = r.exitCode;
  process.stderr.write(out);
  for (const l of out.split('\n')) {
    const m = /^RESULT (\S+) ?(.*?)\r?$/.exec(l);
    if (m) lines.set(m[1]!, m[2]!);
  }
}, 1_000_000);

afterAll(() => {
  dir?.remove();
});

describe('the sgiov CNI plugin in a guest', () => {
  it('VERSION lists 1.1.0; STATUS succeeds with the device there', () => {
    expect(exitCode).toBe(0);
    expect(lines.get('netns')).toBe('rc=0');
    const v = result('version');
    expect(v.rc).toBe(0);
    expect(v.out.cniVersion).toBe('1.1.0');
    expect(v.out.supportedVersions).toContain('1.1.0');
    expect(result('status')).toEqual({ rc: 0, out: {} });
  });

  it('ADD: a spec-shaped result, the address on the interface in the netns, the record', () => {
    const a = result('add-a');
    expect(a.rc).toBe(0);
    expect(a.out.cniVersion).toBe('1.1.0');
    const ifs = a.out.interfaces as Json[];
    expect(ifs).toHaveLength(1);
    expect(ifs[0]).toMatchObject({ name: 'eth0', sandbox: '/run/netns/a' });
    expect(ifs[0]!.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const ips = a.out.ips as Json[];
    expect(ips).toHaveLength(1);
    expect(ips[0]).toMatchObject({ interface: 0, gateway: '10.88.0.1' });
    const addr = ips[0]!.address as string;
    expect(addr).toMatch(/^10\.88\.\d+\.\d+\/16$/);
    // In the container's netns: iproute2's own view.
    expect(lines.get('addr-a')).toMatch(new RegExp(`^eth0 UNKNOWN ${addr.replace(/\./g, '\\.')}`));
    // host-local reserved it.
    expect(lines.get('ipam')?.trim()).toBe(addr.split('/')[0]);
    const rec = JSON.parse(lines.get('record-a') ?? '{}') as Json;
    expect(rec).toMatchObject({
      network: 'sgiov',
      containerId: A,
      ifname: 'eth0',
      netns: '/run/netns/a',
      address: addr,
      ip: addr.split('/')[0],
      tenant: { name: A, weight: 2, capMbps: 3000 },
      offload: {},
    });
    expect((rec.tenant as Json).id).toBe(1);
    const b = JSON.parse(lines.get('record-b') ?? '{}') as Json;
    expect(b).toMatchObject({
      network: 'sgiov-vxlan-ipsec',
      tenant: { id: 2, weight: 1, capMbps: 0 },
      offload: { encap: { vni: 42 }, encrypt: 'aes-256-gcm' },
    });
    expect(b.address).toMatch(/^10\.89\./);
  });

  it('CHECK against prevResult passes; after DEL it fails', () => {
    expect(result('check-a')).toEqual({ rc: 0, out: {} });
    expect(result('check-b')).toEqual({ rc: 0, out: {} }); // the device accepts a socket of b's tenant
    expect(expectError('check-b-after-del', 104).details).toMatch(/no record/);
  });

  it('errors have the specification’s shape and codes', () => {
    expect(expectError('add-a-again', 100).details).toMatch(/attached/);
    expectError('bad-json', 6);
    expect(expectError('no-name', 7).details).toMatch(/name/);
    expect(expectError('bad-offload', 2).details).toMatch(/offload\.compress/);
    expect(expectError('no-netns', 3).details).toMatch(/\/run\/netns\/nope/);
    expect(expectError('no-ifname', 4).details).toMatch(/CNI_IFNAME/);
  });

  it('DEL twice succeeds; the record and the interface are gone', () => {
    expect(result('del-b')).toEqual({ rc: 0, out: {} });
    expect(result('del-b-again')).toEqual({ rc: 0, out: {} });
    expect(lines.get('gone-b')).toBe('0 1'); // no record; `ip link show eth0` fails in netns b
  });

  it('tenants with their own keys from the guest: each reads its own, not the other’s (EBADMSG); bad input refused', () => {
    // sgiov-tenant-keys: 23 checks, every one passed.
    expect(lines.get('keys')).toBe('rc=0 23 ');
  });

  it('GC removes the stale attachment and keeps the valid one; the device keeps only its tenant', () => {
    expect(result('add-c').rc).toBe(0);
    expect(lines.get('before-gc')).toBe('2 2'); // records of a and c; addresses of a and c
    expect(result('gc')).toEqual({ rc: 0, out: {} });
    expect(lines.get('after-gc')).toBe('1 1 1'); // a's record and address stay
    expect(tenantsAtEnd.map((t) => [t.id, t.tenant, t.weight, t.capGbps])).toEqual([
      [0, 'default', 1, null],
      [1, A, 2, 3],
    ]);
  });
});
