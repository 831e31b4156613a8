/**
 * A cluster's credentials for the harness (benchmarks, campaigns) and the
 * tests: a secret and, for TLS, a CA with a certificate per node, all made
 * by scripts/fabric-certs.sh in a directory the caller owns.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { loadFabricTls, type FabricTls } from '../emulator/fabric/tls.js';
import { repoRoot } from '../emulator/util/paths.js';

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
