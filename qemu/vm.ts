/**
 * Runs the real thing: the emulator as its own process and a QEMU (TCG) VM
 * attached to it over vfio-user, booting the guest kernel with the sgiov
 * initramfs. Used by the VM tests and by `npm run demo`.
 *
 * Every process started here is stopped by its PID; sockets and temp dirs
 * are removed by stop()/cleanup().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  type WriteStream,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../emulator/control/client.js';
import { cacheDir, checkoutId, repoRoot } from '../emulator/util/paths.js';

export interface GuestImage {
  kernel: string;
  initramfs: string;
  kver: string;
  tree: string;
  key: string;
  /** The glibc userland archive (scripts/steps/guest-userland.sh), when the setup built it. */
  userland?: string;
}

/** The setup's record NAME.json, this checkout's (NAME-<checkout>.json) first. */
function guestRecord(name: string): Record<string, string> | null {
  const dir = join(cacheDir(), 'guest');
  for (const f of [`${name}-${checkoutId()}.json`, `${name}.json`]) {
    const p = join(dir, f);
    if (existsSync(p)) return JSON.parse(readFileSync(p, 'utf8')) as Record<string, string>;
  }
  return null;
}

export function guestImage(): GuestImage {
  const img = guestRecord('image') as GuestImage | null;
  if (!img)
    throw new Error(`${join(cacheDir(), 'guest', 'image.json')} not found: run scripts/setup.sh first`);
  const u = guestRecord('userland');
  if (u?.userland && existsSync(u.userland)) img.userland = u.userland;
  return img;
}

/**
 * Writes to `out` the initramfs followed by more archives (the userland, extra
 * packages, a run's files): Linux unpacks each in turn, later files winning.
 * Each part starts on a 4-byte boundary (zeros between are skipped), which an
 * uncompressed newc archive needs.
 */
export function composeInitrd(out: string, parts: string[]): string {
  const fd = openSync(out, 'w');
  try {
    let at = 0;
    for (const p of parts) {
      const pad = (4 - (at % 4)) % 4;
      if (pad) writeSync(fd, Buffer.alloc(pad));
      const b = readFileSync(p);
      writeSync(fd, b);
      at += pad + b.length;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds or `ms` pass; returns whether it held. */
export async function until(cond: () => boolean, ms: number, stepMs = 20): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(stepMs);
  }
  return cond();
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

/** Sends SIGTERM to `pid`, then SIGKILL after `graceMs`; resolves when it is gone. */
export async function stopProcess(p: ChildProcess, graceMs: number): Promise<void> {
  if (exited(p) || p.pid === undefined) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  process.kill(p.pid, 'SIGTERM');
  const t = setTimeout(() => {
    if (!exited(p) && p.pid !== undefined) process.kill(p.pid, 'SIGKILL');
  }, graceMs);
  await gone;
  clearTimeout(t);
}

/** A temp dir for one run: sockets, logs, consoles. Kept on failure when asked. */
export class RunDir {
  readonly path: string;
  constructor(prefix = 'sgiov-') {
    this.path = mkdtempSync(join(tmpdir(), prefix));
  }
  file(name: string): string {
    return join(this.path, name);
  }
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

export interface EmulatorOptions {
  socketPath: string;
  logPath: string;
  logLevel?: string;
  extraArgs?: string[];
  /** Run it inside this network namespace (`ip netns exec`, which execs: the PID stays the emulator's). */
  netns?: string;
}

/** The emulator as a separate process (node dist/emulator/cli/main.js serve). */
export class EmulatorProcess {
  readonly proc: ChildProcess;
  private out: WriteStream;
  private text = '';

  constructor(readonly opts: EmulatorOptions) {
    const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
    if (!existsSync(cli)) throw new Error(`${cli} not found: run npm run build`);
    this.out = createWriteStream(opts.logPath);
    const argv = [
      cli,
      'serve',
      '--socket',
      opts.socketPath,
      '--log-level',
      opts.logLevel ?? 'debug',
      ...(opts.extraArgs ?? []),
    ];
    this.proc = spawn(
      opts.netns ? 'ip' : process.execPath,
      opts.netns ? ['netns', 'exec', opts.netns, process.execPath, ...argv] : argv,
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const sink = (d: Buffer): void => {
      this.out.write(d);
      this.text += d.toString();
    };
    this.proc.stdout!.on('data', sink);
    this.proc.stderr!.on('data', sink);
  }

  get pid(): number {
    return this.proc.pid!;
  }
  get alive(): boolean {
    return !exited(this.proc);
  }
  /** Everything it logged so far. */
  get log(): string {
    return this.text;
  }
  /** Its log as parsed JSON lines (non-JSON lines skipped). */
  records(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  /** The control socket's path when it was started with `--control`. */
  get controlPath(): string | undefined {
    const a = this.opts.extraArgs ?? [];
    const i = a.findIndex((x) => x === '--control' || x === '-c');
    return i >= 0 ? a[i + 1] : undefined;
  }

  /**
   * Resolves once the vfio-user socket and, with `--control`, the control
   * socket are there: the control server listens after the device thread
   * starts, so a test that talks to it right after the vfio-user socket
   * appeared could find no socket yet (seen in CI: connect ENOENT).
   */
  async ready(ms = 10_000): Promise<void> {
    // The log line needs level info; the socket file appears at any level.
    const ctl = this.controlPath;
    const ok = await until(
      () =>
        !this.alive ||
        ((this.text.includes('listening for a vfio-user client') || existsSync(this.opts.socketPath)) &&
          (ctl === undefined || existsSync(ctl))),
      ms,
    );
    if (!ok || !this.alive) throw new Error(`emulator did not start:\n${this.text.slice(-2000)}`);
  }

  async stop(): Promise<void> {
    await stopProcess(this.proc, 3000);
    await new Promise<void>((r) => this.out.end(r));
  }
}

export interface VmOptions {
  socketPath: string;
  consolePath: string;
  /** The /init scenario: sgiov.run=<scenario>. */
  scenario: string;
  memMiB?: number;
  /** Hard limit: QEMU is killed after this many seconds. */
  timeoutS?: number;
  extraAppend?: string;
  /** Let the guest reboot (no -no-reboot): a reboot boots the same kernel and initramfs again. */
  reboot?: boolean;
  /** vCPUs (default 1). */
  smp?: number;
  /** Archives unpacked after the image's initramfs (composeInitrd; written next to the console file). */
  extraInitrd?: string[];
  /** The guest's serial console reads the host's stdin (an interactive shell). */
  stdin?: boolean;
}

/** One `SGIOV: kind k=v ...` line printed by the guest's /init. */
export interface GuestLine {
  kind: string;
  fields: Record<string, string>;
  raw: string;
  /** When the host read it (ms since the epoch). */
  at: number;
}

export function parseGuestLine(line: string): GuestLine | null {
  const m = /SGIOV: (.*)$/.exec(line.replace(/\r$/, ''));
  if (!m) return null;
  const rest = m[1]!.trim();
  const sp = rest.indexOf(' ');
  const kind = sp < 0 ? rest : rest.slice(0, sp);
  const fields: Record<string, string> = {};
  const body = sp < 0 ? '' : rest.slice(sp + 1);
  // reason= and msg= are free text and run to the end of the line.
  const free = /(?:^|\s)(reason|msg)=(.*)$/.exec(body);
  const head = free ? body.slice(0, free.index) : body;
  for (const f of head.matchAll(/(\w[\w.-]*)=(\S*)/g)) fields[f[1]!] = f[2]!;
  if (free) fields[free[1]!] = free[2]!;
  return { kind, fields, raw: rest, at: Date.now() };
}

/** A QEMU VM (TCG) attached to the emulator's socket; the serial console goes to a file. */
export class QemuVm {
  readonly proc: ChildProcess;
  readonly lines: GuestLine[] = [];
  private console: WriteStream;
  private text = '';
  private partial = '';
  private killTimer: NodeJS.Timeout;
  readonly startedAt = Date.now();

  constructor(
    readonly opts: VmOptions,
    img: GuestImage = guestImage(),
  ) {
    const t = img.tree;
    // iomem=relaxed lets the guest's sgiov-mmio tool map BAR0 while the driver holds it.
    const append = [
      'console=ttyS0',
      'panic=-1',
      'quiet',
      'loglevel=4',
      'iomem=relaxed',
      `sgiov.run=${opts.scenario}`,
      opts.extraAppend ?? '',
    ]
      .join(' ')
      .trim();
    const args = [
      '--library-path',
      join(t, 'usr/lib/x86_64-linux-gnu'),
      join(t, 'usr/bin/qemu-system-x86_64'),
      '-L',
      join(t, 'usr/share/qemu'),
      '-L',
      join(t, 'usr/share/seabios'),
      '-accel',
      'tcg',
      '-cpu',
      'max',
      '-smp',
      String(opts.smp ?? 1),
      '-m',
      String(opts.memMiB ?? 512),
      // Shared guest RAM, so the device DMAs straight into it.
      '-object',
      `memory-backend-memfd,id=mem,size=${opts.memMiB ?? 512}M,share=on`,
      '-machine',
      'q35,memory-backend=mem',
      '-nic',
      'none',
      '-display',
      'none',
      '-monitor',
      'none',
      // signal=off: a ^C typed into an interactive guest shell goes to the guest.
      '-chardev',
      `stdio,id=console,signal=${opts.stdin ? 'off' : 'on'}`,
      '-serial',
      'chardev:console',
      ...(opts.reboot ? [] : ['-no-reboot']),
      '-kernel',
      img.kernel,
      '-initrd',
      opts.extraInitrd?.length
        ? composeInitrd(`${opts.consolePath}.initrd`, [img.initramfs, ...opts.extraInitrd])
        : img.initramfs,
      '-append',
      append,
      '-device',
      JSON.stringify({ driver: 'vfio-user-pci', socket: { path: opts.socketPath, type: 'unix' } }),
    ];
    this.console = createWriteStream(opts.consolePath);
    this.proc = spawn(join(t, 'usr/lib64/ld-linux-x86-64.so.2'), args, {
      stdio: [opts.stdin ? 'inherit' : 'ignore', 'pipe', 'pipe'],
    });
    const sink = (d: Buffer): void => {
      this.console.write(d);
      const s = d.toString();
      this.text += s;
      const parts = (this.partial + s).split('\n');
      this.partial = parts.pop()!;
      for (const p of parts) {
        const g = parseGuestLine(p);
        if (g) this.lines.push(g);
      }
    };
    this.proc.stdout!.on('data', sink);
    this.proc.stderr!.on('data', sink);
    this.killTimer = setTimeout(
      () => {
        if (!exited(this.proc)) this.proc.kill('SIGKILL');
      },
      (opts.timeoutS ?? 120) * 1000,
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }
  get alive(): boolean {
    return !exited(this.proc);
  }
  get output(): string {
    return this.text;
  }

  find(kind: string): GuestLine[] {
    return this.lines.filter((l) => l.kind === kind);
  }

  async waitFor(pred: (l: GuestLine) => boolean, ms: number): Promise<GuestLine> {
    let hit: GuestLine | undefined;
    const ok = await until(() => {
      hit = this.lines.find(pred);
      return hit !== undefined || !this.alive;
    }, ms);
    hit ??= this.lines.find(pred);
    if (!ok || !hit)
      throw new Error(
        `guest line not seen within ${ms} ms (console: ${this.opts.consolePath})\n${this.text.slice(-3000)}`,
      );
    return hit;
  }

  /** Waits for QEMU to exit on its own (the guest powers off). */
  async exit(ms: number): Promise<number | null> {
    if (!(await until(() => !this.alive, ms, 50)))
      throw new Error(`QEMU still running after ${ms} ms (console: ${this.opts.consolePath})`);
    clearTimeout(this.killTimer);
    await new Promise<void>((r) => this.console.end(r));
    return this.proc.exitCode;
  }

  /** Kills QEMU by its PID at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    clearTimeout(this.killTimer);
    if (this.alive) {
      const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
      process.kill(this.pid, 'SIGKILL');
      await gone;
    }
    await new Promise<void>((r) => this.console.end(r));
  }

  async stop(): Promise<void> {
    clearTimeout(this.killTimer);
    await stopProcess(this.proc, 2000);
    await new Promise<void>((r) => this.console.end(r));
  }
}

/** One command to an emulator's control socket (JSON lines): its result; throws on an error reply or no answer in `ms`. */
export async function controlCall(
  path: string,
  cmd: string,
  args: Record<string, unknown> = {},
  ms = 10_000,
): Promise<unknown> {
  const c = await ControlClient.connect(path);
  try {
    const r = await c.request(cmd, args, ms);
    if (!r.ok) throw new Error(`control ${cmd}: ${r.error}`);
    return r.result;
  } finally {
    c.close();
  }
}

/**
 * Waits until the emulator behind control socket `ctl` has a socket
 * listening on `port` (a guest's listener is up), while `vm` lives; false
 * after `ms`. A node's guest connects to another's only then, as a client
 * would retry.
 */
export async function guestListening(ctl: string, port: number, vm: QemuVm, ms = 120_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end && vm.alive; ) {
    const r = (await controlCall(ctl, 'sockets', { limit: 16 }).catch(() => null)) as {
      sockets: { state: string; port: number | null }[];
    } | null;
    if (r?.sockets.some((x) => x.state === 'listening' && x.port === port)) return true;
    await sleep(200);
  }
  return false;
}
