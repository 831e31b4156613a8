/**
 * Test support: several fabric nodes in one process on 127.0.0.1, for the
 * fabric's own tests and the data-plane tests that run more than one node.
 */
import { createServer, type AddressInfo } from 'node:net';
import { parseClusterArgs, type Cluster } from '../../emulator/fabric/cluster.js';
import type { FabricTls } from '../../emulator/fabric/tls.js';

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

export { FabricCredentials } from '../../qemu/fabric-credentials.js';
