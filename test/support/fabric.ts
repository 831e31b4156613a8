/**
 * Test support: several fabric nodes in one process on 127.0.0.1, for the
 * fabric's own tests and the data-plane tests that run more than one node.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from '../../emulator/util/paths.js';
import { parseClusterArgs, type Cluster } from '../../emulator/fabric/cluster.js';
import { loadFabricTls, type FabricTls } from '../../emulator/fabric/tls.js';

/** The secret of the tests' in-process clusters: authentication is on unless a test turns it off. */
export const TEST_SECRET = new TextEncoder().encode('the cluster secret of sgiov tests');

/**
 * Ports the kernel just handed out as ephemeral and that are free again. The
 * cluster description needs every port before any node starts, and a
 * restarted node must come back on its old one, so port 0 will not do.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * The cluster of `ports`' nodes on 127.0.0.1, as seen from `self`: with
 * TEST_SECRET unless `secret` says otherwise (null: none), with TLS when given.
 */
export function localCluster(
  self: string,
  ports: Record<string, number>,
  opts: { secret?: Uint8Array | null; tls?: FabricTls } = {},
): Cluster {
  const c = parseClusterArgs([
    ...Object.entries(ports).flatMap(([name, port]) => ['--node', `${name}=127.0.0.1:${port}`]),
    '--self',
    self,
  ]);
  const secret = opts.secret === undefined ? TEST_SECRET : opts.secret;
  return { ...c, ...(secret ? { secret } : {}), ...(opts.tls ? { tls: opts.tls } : {}) };
}

/** A cluster's secret file and TLS files in a directory (scripts/fabric-certs.sh made them). */
export class FabricCredentials {
  private constructor(readonly dir: string) {}

  /** Makes (or adds to) `dir`'s secret, CA and the certificates of `nodes`. */
  static make(dir: string, nodes: readonly string[]): FabricCredentials {
    execFileSync('bash', [join(repoRoot(), 'scripts', 'fabric-certs.sh'), dir, ...nodes], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return new FabricCredentials(dir);
  }

  get secretFile(): string {
    return join(this.dir, 'secret');
  }

  /** `serve`'s flags for `node`: the secret, and with `tls` the CA, its certificate and key. */
  flags(node: string, tls: boolean): string[] {
    const f = (n: string): string => join(this.dir, n);
    const out = ['--fabric-secret', this.secretFile];
    if (tls) out.push('--fabric-tls', '--fabric-ca', f('ca.pem'), '--fabric-cert', f(`${node}.pem`));
    if (tls) out.push('--fabric-key', f(`${node}.key`));
    return out;
  }

  /** `node`'s TLS files, loaded (for an in-process Fabric). */
  tls(node: string): FabricTls {
    const f = (n: string): string => join(this.dir, n);
    return loadFabricTls({ ca: f('ca.pem'), cert: f(`${node}.pem`), key: f(`${node}.key`) }, node, (k) => k);
  }
}
