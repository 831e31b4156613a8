/**
 * Runs a command in a guest (`sgiov vm`): a fresh emulator process, a QEMU
 * (TCG) VM booting the guest image with the glibc userland, sgiov.ko loaded
 * and bound, the guest's SG-IOV address set, then COMMAND with its output
 * streamed to the host; the run ends with the command's exit status and the
 * emulator's counters, read through its control interface.
 *
 * What goes into the guest besides the image travels as more initramfs
 * archives after it: the userland (setup), extra Debian packages
 * (scripts/guest-packages.sh, cached per package set) and the run's own
 * archive (/etc/sgiov/job.sh with the command, and the --copy files).
 * qemu/init's `vm` scenario does the guest side.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import { spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { repoRoot } from '../emulator/util/paths.js';
import { guestAddress } from './address-plan.js';
import { controlCall, EmulatorProcess, guestImage, QemuVm, RunDir } from './vm.js';

/** A host file or folder and where it goes in the guest (--copy HOST_PATH:GUEST_PATH). */
export interface Copy {
  host: string;
  guest: string;
}

export interface RunOptions {
  /** The command and its arguments (empty with `shell`). */
  command: string[];
  /** An interactive shell on the console instead of a command, reading the host's stdin. */
  shell?: boolean;
  /** Extra Debian packages (names as apt knows them). */
  packages?: string[];
  copies?: Copy[];
  memMiB?: number;
  smp?: number;
  /** The guest's address with its prefix length; default the plan's for node 0, VM 0. */
  addr?: string;
  /** The command's output (bytes as they come); default the host's stdout. */
  out?: (chunk: Buffer) => void;
  /** Progress and diagnostics (one line each); default the host's stderr. */
  info?: (line: string) => void;
  /** The command's stdout is the guest's console (a terminal) rather than a pipe; default: when the host's stdout is a terminal. */
  tty?: boolean;
  /** QEMU is killed after this many seconds (default a day). */
  timeoutS?: number;
  /** Keep the run directory (console, emulator log) even when the run went well. */
  keep?: boolean;
  /** The emulator as one node of a cluster: its network namespace and extra arguments (--cluster ...). */
  emulator?: { netns?: string; extraArgs?: string[] };
}

export interface RunResult {
  /** The command's exit status in the guest. */
  exitCode: number;
  /** Wall-clock seconds of the whole run (emulator start to the command's end). */
  seconds: number;
  /** Seconds from QEMU's start to the command's start in the guest. */
  bootSeconds: number;
  /** The emulator's data-plane counters at the end (msgsMoved, bytesMoved, socketsCreated, ...). */
  device: Record<string, unknown>;
  /** The guest's address (CIDR). */
  addr: string;
}

/** The run could not give the command's status: setup missing, the guest failed, a bad --copy. */
export class VmRunError extends Error {}

/** Shell single quotes around `s`. */
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Where a --copy lands in the run's archive root: GUEST_PATH, or inside it when it ends in '/'. */
function copyTarget(root: string, c: Copy): string {
  if (!posix.isAbsolute(c.guest))
    throw new VmRunError(`--copy ${c.host}:${c.guest}: the guest path must be absolute`);
  const g = posix.normalize(c.guest.endsWith('/') ? posix.join(c.guest, basename(c.host)) : c.guest);
  if (g === '/') throw new VmRunError(`--copy ${c.host}:${c.guest}: not onto the guest's root`);
  return join(root, g);
}

/** The run's own archive: the command as /etc/sgiov/job.sh and the copies (gzipped newc). */
export function jobArchive(dir: RunDir, o: Pick<RunOptions, 'command' | 'copies'>): string {
  const root = dir.file('job');
  mkdirSync(join(root, 'etc', 'sgiov'), { recursive: true });
  for (const c of o.copies ?? []) {
    if (!existsSync(c.host)) throw new VmRunError(`--copy ${c.host}:${c.guest}: ${c.host} does not exist`);
    const to = copyTarget(root, c);
    mkdirSync(dirname(to), { recursive: true });
    cpSync(c.host, to, { recursive: statSync(c.host).isDirectory(), preserveTimestamps: true });
  }
  writeFileSync(
    join(root, 'etc', 'sgiov', 'job.sh'),
    `# sgiov vm: the command (qemu/run.ts)\nset -- ${o.command.map(quote).join(' ')}\nexec "$@"\n`,
  );
  const cpio = spawnSync(
    'sh',
    ['-c', 'find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0'],
    {
      cwd: root,
      maxBuffer: 1 << 30,
    },
  );
  if (cpio.status !== 0)
    throw new VmRunError(`cpio of the run's files failed: ${cpio.stderr.toString().trim()}`);
  const out = dir.file('job.cpio.gz');
  writeFileSync(out, gzipSync(cpio.stdout, { level: 1 }));
  return out;
}

/** The archive of extra packages (built and cached by scripts/guest-packages.sh). */
export function packagesArchive(packages: string[], info: (l: string) => void): Promise<string> {
  const script = join(repoRoot(), 'scripts', 'guest-packages.sh');
  info(`[sgiov vm] packages ${packages.join(',')}: from the trixie tree (cached per set)`);
  return new Promise((resolve, reject) => {
    execFile('bash', [script, ...packages], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const path = stdout.trim().split('\n').pop() ?? '';
      if (err || !existsSync(path)) {
        const tail = stderr.trim().split('\n').slice(-15).join('\n');
        reject(new VmRunError(`--packages ${packages.join(',')}: ${tail || (err?.message ?? 'no archive')}`));
      } else resolve(path);
    });
  });
}

const EXIT = /SGIOV: vm_exit rc=(\d+)\r?\n/;
const START = /SGIOV: vm_start[^\n]*\n/;
const ERROR = /SGIOV: vm_error reason=([^\r\n]*)\r?\n/;
const MARK = 'SGIOV: vm_exit rc=';

/** The length of the end of `s` that may be the start of the exit line (held back until it is known). */
function heldTail(s: string): number {
  for (let k = Math.min(s.length, MARK.length + 12); k > 0; k--) {
    const t = s.slice(-k);
    if (MARK.startsWith(t) || (t.startsWith(MARK) && /^\d*\r?$/.test(t.slice(MARK.length)))) return k;
  }
  return 0;
}

/**
 * The console between vm_start and vm_exit, passed on as it comes; resolves
 * with the exit status, or rejects on vm_error or a VM gone without it.
 */
class ConsoleStream {
  private buf = '';
  private started = false;
  startedAt = 0;
  done: Promise<number>;
  private settle!: (rc: number) => void;
  private fail!: (e: Error) => void;
  private finished = false;

  constructor(private readonly out: (b: Buffer) => void) {
    this.done = new Promise((res, rej) => {
      this.settle = res;
      this.fail = rej;
    });
  }

  // latin1 keeps every byte as one character: output passes through unchanged.
  feed(d: Buffer): void {
    if (this.finished) return;
    this.buf += d.toString('latin1');
    if (!this.started) {
      const e = ERROR.exec(this.buf);
      if (e) return this.end(new VmRunError(`the guest did not run the command: ${e[1]}`));
      const m = START.exec(this.buf);
      if (!m) {
        // Boot messages: only the last line matters.
        const nl = this.buf.lastIndexOf('\n');
        if (nl >= 0) this.buf = this.buf.slice(nl + 1);
        return;
      }
      this.started = true;
      this.startedAt = Date.now();
      this.buf = this.buf.slice(m.index + m[0].length);
    }
    const x = EXIT.exec(this.buf);
    if (x) {
      this.emit(this.buf.slice(0, x.index));
      this.finished = true;
      this.settle(Number(x[1]));
      return;
    }
    const keep = heldTail(this.buf);
    this.emit(this.buf.slice(0, this.buf.length - keep));
    this.buf = this.buf.slice(this.buf.length - keep);
  }

  private emit(s: string): void {
    if (s) this.out(Buffer.from(s, 'latin1'));
  }

  end(e: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.fail(e);
  }
}

/** Runs the command in a fresh VM against a fresh emulator. */
export async function runInVm(o: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const info = o.info ?? ((l: string) => process.stderr.write(l + '\n'));
  const out = o.out ?? ((b: Buffer) => process.stdout.write(b));
  if (!o.shell && o.command.length === 0) throw new VmRunError('no command (or --shell)');
  const img = guestImage();
  if (!img.userland)
    throw new VmRunError('no guest userland: run scripts/setup.sh (its guest-userland step)');
  const addr = o.addr ?? guestAddress(0, 0);
  const dir = new RunDir('sgiov-vm-');
  let keep = o.keep ?? process.env.SGIOV_VM_KEEP === '1';
  let emu: EmulatorProcess | null = null;
  let vm: QemuVm | null = null;
  try {
    const parts = [img.userland];
    if (o.packages?.length) parts.push(await packagesArchive(o.packages, info));
    parts.push(jobArchive(dir, o));
    emu = new EmulatorProcess({
      socketPath: dir.file('sgiov.sock'),
      logPath: dir.file('emulator.log'),
      logLevel: 'info',
      ...(o.emulator?.netns ? { netns: o.emulator.netns } : {}),
      extraArgs: [...(o.emulator?.extraArgs ?? []), '--control', dir.file('control.sock')],
    });
    await emu.ready();
    const stream = new ConsoleStream(out);
    vm = new QemuVm(
      {
        socketPath: dir.file('sgiov.sock'),
        consolePath: dir.file('console.log'),
        scenario: 'vm',
        memMiB: o.memMiB ?? 1024,
        smp: o.smp ?? 1,
        timeoutS: o.timeoutS ?? 86_400,
        extraAppend: [
          `sgiov.addr=${addr}`,
          o.shell ? 'sgiov.shell=1' : '',
          `sgiov.tty=${(o.tty ?? process.stdout.isTTY === true) ? 1 : 0}`,
        ].join(' '),
        extraInitrd: parts,
        stdin: o.shell ?? false,
      },
      img,
    );
    const v = vm;
    v.proc.stdout!.on('data', (d: Buffer) => stream.feed(d));
    v.proc.once('exit', (code, sig) =>
      // Output still in the pipe is read before 'close'.
      v.proc.once('close', () =>
        stream.end(
          new VmRunError(
            `QEMU ended (${sig ?? `exit ${code}`}) before the command finished; console: ${dir.file('console.log')}\n` +
              v.output.slice(-1500),
          ),
        ),
      ),
    );
    let exitCode: number;
    try {
      exitCode = await stream.done;
    } catch (e) {
      keep = true;
      throw e;
    }
    const seconds = (Date.now() - t0) / 1000;
    const status = (await controlCall(emu.controlPath!, 'status')) as {
      device: { dataPlane: { counters: Record<string, unknown>; socketsOpen: number } };
    };
    const dp = status.device.dataPlane;
    // The guest powers off after vm_exit.
    await v.exit(20_000).catch(() => v.stop());
    return {
      exitCode,
      seconds,
      bootSeconds: (stream.startedAt - v.startedAt) / 1000,
      device: { ...dp.counters, socketsOpen: dp.socketsOpen },
      addr,
    };
  } finally {
    if (vm?.alive) await vm.stop();
    await emu?.stop();
    if (keep) info(`[sgiov vm] run files kept in ${dir.path}`);
    else dir.remove();
  }
}
