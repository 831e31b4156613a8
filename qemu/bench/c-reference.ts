/**
 * The C reference for the BAR-access row: libvfio-user's own sample server
 * (samples/server, built by the setup beside the library) serves a device
 * whose BAR0 read handler is a few lines of C. The same VM-less client, in
 * the same run, times the same REGION_READ round trip against it, so the
 * emulator's figure has a ratio to what C over the same library costs.
 * (The sample's BAR0 takes 8-byte reads only; SCRATCH is read as 4 bytes.)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { cacheDir } from '../../emulator/util/paths.js';
import { stopProcess, until, type RunDir } from '../vm.js';
import { stats, type Stats } from './stats.js';

export function sampleServerPath(): string {
  return join(cacheDir(), 'libvfio-user', 'build', 'samples', 'server');
}

/** `reads` timed REGION_READs of the sample's BAR0 (after 2,000 to warm up), in ns. */
export async function cReferenceBarRead(
  reads: number,
  dir: RunDir,
  sample: (n: number, fn: () => void) => number[],
): Promise<(Stats & { what: string }) | { skipped: string }> {
  const bin = sampleServerPath();
  if (!existsSync(bin)) return { skipped: `${bin} not built (scripts/setup.sh builds it with libvfio-user)` };
  const sock = dir.file('c-reference.sock');
  const p = spawn(bin, [sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  let c: VfioUserClient | null = null;
  try {
    if (!(await until(() => existsSync(sock) || p.exitCode !== null, 10_000)) || !existsSync(sock))
      return { skipped: `the sample server did not start: ${err.slice(-300)}` };
    c = VfioUserClient.connect(sock, { memBytes: 1 << 20 });
    const client = c;
    for (let i = 0; i < 2000; i++) client.regionRead(0, 0, 8);
    return {
      what: "REGION_READ of libvfio-user's samples/server BAR0 (8 bytes, C), same client",
      ...stats(sample(reads, () => client.regionRead(0, 0, 8))),
    };
  } finally {
    c?.close();
    await stopProcess(p, 2000);
  }
}
