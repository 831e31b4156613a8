/**
 * Real programs over SG-IOV against the guest kernel's own TCP, side by
 * side in one VM run (issue 12, part 5):
 *
 *   npm run bench:apps       (tsc, then node dist/qemu/bench/apps.js)
 *   node dist/qemu/bench/apps.js [--seconds S] [--repeats N] [--smp N] [--no-json]
 *
 * One guest (`runInVm`, the runner of `sgiov vm`) measures each program
 * first on the kernel's TCP over loopback, then the same under `sgiov-run`
 * (the preload puts its sockets on /dev/sgiov), after a short warm-up round
 * of the same (TCG translates code on its first run):
 *   - iperf3, 128 KiB writes, S seconds: receiver throughput, and guest CPU
 *     seconds per GB moved (busy jiffies of /proc/stat over the client's
 *     run, all vCPUs; iperf3's own cpu_utilization_percent kept beside it);
 *   - NPtcp (NetPIPE), 4 KiB messages, N repeats: the one-way time;
 *   - wrk (1 thread, 8 connections, S seconds) against nginx serving a
 *     4 KiB file: requests per second.
 * Rows: {id, unit, sgiov, baseline, ratio = sgiov / baseline, goal, met},
 * printed as a table and written to bench/results/apps-<time>.json with the
 * emulator's counters and the guest kernel's TCP counters around each
 * sgiov measurement (which must not move: the traffic went through the
 * device). QEMU runs under TCG: the figures are emulation figures, the
 * ratios are what count. Nothing here asserts a time.
 */
import { harnessArgs } from '../harness-args.js';
import { SNMP_SH, snmpDelta, snmpTcp } from '../guest-snmp.js';
import { runInVm } from '../run.js';
import { appsRows, sideFigures, type AppsRow } from './apps-rows.js';
import { gitCommit, machine, table, writeResult } from './report.js';

const APPS_HELP = `npm run bench:apps -- [options]
  iperf3, NPtcp and nginx + wrk in one VM, on the guest kernel's TCP and under sgiov-run;
  rows {id, unit, sgiov, baseline, ratio, goal, met} as a table and bench/results/apps-<time>.json
  --seconds S   iperf3 and wrk run time (default 5)
  --repeats N   NPtcp repeats per size (default 300)
  --smp N       guest vCPUs (default 2)
  --no-json     the table only
  -h, --help    this text`;

const NOTE =
  'TCG figures: QEMU without KVM emulates every guest instruction, so absolute numbers are far below native; the ratios (both sides in the same VM run) are what count';

/** The guest side: `sh -c SCRIPT bench SECONDS REPEATS`. */
const SCRIPT = String.raw`set -u
T=$1; NREP=$2
cd /tmp
${SNMP_SH}
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
tail_of() { for f in "$@"; do [ -s "$f" ] && tail -n 5 "$f" | sed "s|^|LOG $f: |"; done; }
have() { [ "$1" = kernel ] || command -v sgiov-run >/dev/null; }
# run SIDE CMD...: CMD, under sgiov-run for the sgiov side.
run() { if [ "$1" = kernel ]; then shift; "$@"; else shift; sgiov-run "$@"; fi; }

iperf() { # SIDE PORT
	have $1 || { echo "BENCH iperf3 $1 rc=no-sgiov-run"; return; }
	run $1 iperf3 -s -1 -B 127.0.0.1 -p $2 >/tmp/iperf-s-$1.log 2>&1 &
	spid=$!
	sleep 2
	b0=$(busy)
	run $1 iperf3 -c 127.0.0.1 -p $2 -t $T -l 128K -J >/tmp/iperf-$1.json 2>/tmp/iperf-c-$1.err
	rc=$?
	b1=$(busy)
	sleep 1; kill $spid 2>/dev/null; wait $spid 2>/dev/null
	echo "BENCH iperf3 $1 rc=$rc busy=$((b1 - b0)) json=$(tr -d '\n\t ' </tmp/iperf-$1.json)"
	[ $rc = 0 ] || tail_of /tmp/iperf-s-$1.log /tmp/iperf-c-$1.err
}

nptcp() { # SIDE PORT
	have $1 || { echo "BENCH nptcp $1 rc=no-sgiov-run"; return; }
	run $1 NPtcp -P $2 -l 4096 -u 4096 -p 0 -n $NREP >/tmp/np-r-$1.log 2>&1 &
	rpid=$!
	sleep 2
	run $1 NPtcp -h 127.0.0.1 -P $2 -l 4096 -u 4096 -p 0 -n $NREP -o /tmp/np-$1.out >/tmp/np-t-$1.log 2>&1
	rc=$?
	sleep 1; kill $rpid 2>/dev/null; wait $rpid 2>/dev/null
	echo "BENCH nptcp $1 rc=$rc row=$(awk '$1 == 4096 { print $1 "," $2 "," $3 }' /tmp/np-$1.out 2>/dev/null)"
	[ $rc = 0 ] || tail_of /tmp/np-r-$1.log /tmp/np-t-$1.log
}

mkdir -p /tmp/www
head -c 4096 /dev/urandom >/tmp/www/f4k
wrkrun() { # SIDE PORT
	have $1 || { echo "BENCH wrk $1 rc=no-sgiov-run"; return; }
	cat >/tmp/nginx-$1.conf <<CONF
worker_processes 1;
error_log /tmp/nginx-$1-error.log;
pid /tmp/nginx-$1.pid;
events { worker_connections 256; }
http { access_log off; sendfile on; keepalive_requests 1000000; server { listen 127.0.0.1:$2; root /tmp/www; } }
CONF
	run $1 nginx -c /tmp/nginx-$1.conf
	nrc=$?
	sleep 2
	run $1 wrk -t1 -c8 -d$T http://127.0.0.1:$2/f4k >/tmp/wrk-$1.log 2>&1
	rc=$?
	kill $(cat /tmp/nginx-$1.pid 2>/dev/null) 2>/dev/null
	sleep 1
	echo "BENCH wrk $1 rc=$rc nginx=$nrc rps=$(awk '/^Requests\/sec/ { print $2 }' /tmp/wrk-$1.log) non2xx=$(awk '/Non-2xx/ { print $NF }' /tmp/wrk-$1.log)"
	[ $rc = 0 ] || tail_of /tmp/wrk-$1.log /tmp/nginx-$1-error.log
}

# A short warm-up round first (TCG translates code on its first run: the
# side measured first would pay for it), then the measured round; the
# host reads the last line of each kind.
S0=$T; N0=$NREP
for round in warm measure; do
	if [ $round = warm ]; then T=1; NREP=20; off=10; else T=$S0; NREP=$N0; off=0; fi
	for p in iperf:5201 nptcp:5002 wrkrun:8080; do
		f=${'$'}{p%%:*}; port=$((${'$'}{p#*:} + off))
		$f kernel $port
		snmp $f-before
		$f sgiov $((port + 1))
		snmp $f-after
	done
done
exit 0
`;

const num = (x: number | null, digits: number): string => (x === null ? '-' : x.toFixed(digits));

async function main(): Promise<number> {
  const parsed = harnessArgs('bench:apps', APPS_HELP, process.argv.slice(2), {
    seconds: { type: 'string', default: '5' },
    repeats: { type: 'string', default: '300' },
    smp: { type: 'string', default: '2' },
    'no-json': { type: 'boolean', default: false },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const seconds = Number(values.seconds);
  const repeats = Number(values.repeats);
  const smp = Number(values.smp);
  if (![seconds, repeats, smp].every((n) => Number.isInteger(n) && n > 0)) {
    process.stderr.write('bench:apps: --seconds, --repeats and --smp take positive integers\n');
    return 2;
  }
  const when = new Date().toISOString();
  // The commit the image was built from (before the run: a checkout may move meanwhile).
  const commit = gitCommit();
  let out = '';
  const vm = await runInVm({
    command: ['sh', '-c', SCRIPT, 'bench', String(seconds), String(repeats)],
    smp,
    memMiB: 1024,
    timeoutS: 1800,
    out: (b) => (out += b.toString('latin1')),
    info: (l) => process.stderr.write(`bench:apps: ${l}\n`),
  });
  for (const l of out.split('\n')) if (l.startsWith('LOG ')) process.stderr.write(`bench:apps: guest ${l}\n`);
  const kernel = sideFigures(out, 'kernel');
  const sgiov = sideFigures(out, 'sgiov');
  const rows: AppsRow[] = appsRows(kernel, sgiov);
  const counters = ['ActiveOpens', 'PassiveOpens', 'InSegs', 'OutSegs'];
  const kernelTcpDuringSgiov = Object.fromEntries(
    ['iperf', 'nptcp', 'wrkrun'].map((f) => [
      f,
      snmpDelta(snmpTcp(out, `${f}-before`), snmpTcp(out, `${f}-after`), counters),
    ]),
  );
  const result = {
    when,
    commit,
    machine: machine(),
    note: NOTE,
    vm: { smp, memMiB: 1024, seconds: vm.seconds, bootSeconds: vm.bootSeconds, exitCode: vm.exitCode },
    parameters: {
      iperf3: `-l 128K -t ${seconds}`,
      nptcp: `-l 4096 -u 4096 -p 0 -n ${repeats}`,
      wrk: `-t1 -c8 -d${seconds}`,
    },
    rows,
    sides: { kernel, sgiov },
    device: vm.device,
    kernelTcpDuringSgiov,
  };

  process.stdout.write(
    `sgiov bench:apps ${when} commit ${result.commit ?? '?'} on ${result.machine.cpus} x ${result.machine.cpu}\n` +
      `${NOTE}\n`,
  );
  process.stdout.write(
    table([
      ['row', 'unit', 'sgiov', 'kernel TCP', 'ratio', 'goal', 'met'],
      ...rows.map((r) => [
        r.id,
        r.unit,
        num(r.sgiov, 2),
        num(r.baseline, 2),
        num(r.ratio, 3),
        r.goal,
        r.ratio === null ? 'no figure' : r.met ? 'yes' : 'no',
      ]),
    ]),
  );
  if (sgiov.rc.includes('no-sgiov-run'))
    process.stdout.write(
      'sgiov side: no sgiov-run in the guest image yet (the preload), so no sgiov figures\n',
    );
  process.stdout.write(
    `device: msgsMoved ${String(vm.device.msgsMoved)} bytesMoved ${String(vm.device.bytesMoved)} socketsCreated ${String(vm.device.socketsCreated)}; ` +
      `guest kernel TCP during the sgiov runs: ${JSON.stringify(kernelTcpDuringSgiov)}\n`,
  );
  if (!values['no-json']) process.stdout.write(`figures: ${writeResult(result, 'apps-')}\n`);
  return kernel.rc === '0,0,0' ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench:apps: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
