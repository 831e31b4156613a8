/**
 * Generates the guest side of the ABI from abi.ts: the C header the driver
 * and tools include, and the same definitions as shell variables for the
 * guest's /init scripts.
 *   node dist/emulator/abi/gen-header.js           print the C header
 *   node dist/emulator/abi/gen-header.js --write   write guest-driver/include/sgiov_abi.{h,sh}
 *   node dist/emulator/abi/gen-header.js --check   exit 1 when a committed file is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { repoRoot } from '../util/paths.js';
import {
  ABI_VERSION,
  BARS,
  BITS,
  CONSTANTS,
  DOORBELLS,
  ENUMS,
  PCI_IDS,
  REGISTERS,
  SHM,
  STRUCTS,
} from './abi.js';

const hex = (n: number, pad = 0): string => '0x' + n.toString(16).padStart(pad, '0');

function define(name: string, value: string, doc?: string): string {
  const line = `#define ${name.padEnd(36)} ${value}`;
  return doc ? `${line.padEnd(60)} /* ${doc} */` : line;
}

export function generateHeader(): string {
  const out: string[] = [];
  out.push('/* SPDX-License-Identifier: MIT */');
  out.push('/*');
  out.push(' * SG-IOV guest/device ABI. GENERATED from emulator/abi/abi.ts by');
  out.push(' * `npm run gen-header`; do not edit by hand (a test checks it is current).');
  out.push(' */');
  out.push('#ifndef SGIOV_ABI_H');
  out.push('#define SGIOV_ABI_H');
  out.push('');
  out.push(define('SGIOV_ABI_MAJOR', String(ABI_VERSION.major)));
  out.push(define('SGIOV_ABI_MINOR', String(ABI_VERSION.minor)));
  out.push('');
  out.push('/* PCI identity (defaults) */');
  for (const [k, v] of Object.entries(PCI_IDS)) out.push(define(`SGIOV_PCI_${k}`, hex(v, 4)));
  out.push('');
  out.push('/* BAR layout */');
  for (const [k, v] of Object.entries(BARS))
    out.push(define(`SGIOV_${k}`, k.endsWith('BAR') || k.endsWith('VECTORS') ? String(v) : hex(v)));
  out.push('');
  out.push('/* Shared-memory BAR layout (byte offsets; H2D_SLOTS is a count) */');
  for (const [k, v] of Object.entries(SHM))
    out.push(define(`SGIOV_SHM_${k}`, k.endsWith('SLOTS') ? String(v) : hex(v, 3)));
  out.push('');
  out.push('/* Constants */');
  for (const [k, v] of Object.entries(CONSTANTS)) out.push(define(`SGIOV_${k}`, hex(v)));
  out.push('');
  out.push('/* BAR0 registers: offset, width in bytes */');
  for (const r of REGISTERS) {
    out.push(define(`SGIOV_REG_${r.name}`, hex(r.offset, 3), `${r.access}, ${r.width * 8}-bit: ${r.doc}`));
  }
  out.push('');
  out.push('/* Doorbells (trapped), BAR0 */');
  for (const [k, v] of Object.entries(DOORBELLS)) out.push(define(`SGIOV_DOORBELL_${k}`, hex(v, 4)));
  out.push('');
  out.push('/* Bit fields */');
  for (const [group, bits] of Object.entries(BITS)) {
    for (const [k, bit] of Object.entries(bits)) out.push(define(`SGIOV_${group}_${k}`, `(1u << ${bit})`));
  }
  out.push('');
  out.push('/* Enumerations */');
  for (const [group, vals] of Object.entries(ENUMS)) {
    for (const [k, v] of Object.entries(vals)) out.push(define(`SGIOV_${group}_${k}`, String(v)));
  }
  out.push('');
  out.push('/* A signal: type, id and value in one 64-bit word */');
  out.push(
    define(
      'SGIOV_SIG(type, id, value)',
      '((((unsigned long long)(type)) << SGIOV_SIG_TYPE_SHIFT) | (((unsigned long long)((id) & SGIOV_SIG_ID_MASK)) << SGIOV_SIG_ID_SHIFT) | (unsigned int)(value))',
    ),
  );
  out.push(define('SGIOV_SIG_TYPE(sig)', '((unsigned int)((sig) >> SGIOV_SIG_TYPE_SHIFT))'));
  out.push(define('SGIOV_SIG_ID(sig)', '((unsigned int)((sig) >> SGIOV_SIG_ID_SHIFT) & SGIOV_SIG_ID_MASK)'));
  out.push(define('SGIOV_SIG_VALUE(sig)', '((unsigned int)(sig))'));
  out.push(define('SGIOV_RING_ID(sid, dir)', '(((sid) << 1) | (dir))'));
  out.push(
    define(
      'SGIOV_CHAIN(s1, s2, s3, s4)',
      '((unsigned int)(s1) | ((unsigned int)(s2) << 8) | ((unsigned int)(s3) << 16) | ((unsigned int)(s4) << 24))',
    ),
  );
  out.push('');
  out.push('/* Structures in guest memory (little-endian) */');
  out.push('#ifndef __ASSEMBLER__');
  out.push('#ifdef __KERNEL__');
  out.push('#include <linux/types.h>');
  out.push('#define SGIOV_U8 __u8');
  out.push('#define SGIOV_U16 __u16');
  out.push('#define SGIOV_U32 __u32');
  out.push('#define SGIOV_U64 __u64');
  out.push('#else');
  out.push('#include <stdint.h>');
  out.push('#define SGIOV_U8 uint8_t');
  out.push('#define SGIOV_U16 uint16_t');
  out.push('#define SGIOV_U32 uint32_t');
  out.push('#define SGIOV_U64 uint64_t');
  out.push('#endif');
  for (const [name, st] of Object.entries(STRUCTS)) {
    out.push(`/* ${st.doc} */`);
    out.push(`struct sgiov_${name} {`);
    for (const f of st.fields)
      out.push(
        `\t${('SGIOV_' + f.type.toUpperCase()).padEnd(10)} ${(f.name + (f.count ? `[${f.count}]` : '') + ';').padEnd(12)} /* ${hex(f.offset, 2)}: ${f.doc} */`,
      );
    out.push('} __attribute__((packed));');
    out.push(`_Static_assert(sizeof(struct sgiov_${name}) == ${st.size}, "struct sgiov_${name} size");`);
  }
  out.push('#endif /* __ASSEMBLER__ */');
  for (const [name, st] of Object.entries(STRUCTS)) {
    for (const f of st.fields)
      out.push(define(`SGIOV_${name.toUpperCase()}_OFF_${f.name.toUpperCase()}`, hex(f.offset, 2)));
    out.push(define(`SGIOV_${name.toUpperCase()}_SIZE`, String(st.size)));
  }
  out.push('');
  out.push('#endif /* SGIOV_ABI_H */');
  out.push('');
  return out.join('\n');
}

/** The C header's #defines as `NAME=value` shell assignments (expressions evaluated). */
export function generateShell(): string {
  const out = [
    '# SG-IOV guest/device ABI for shell scripts. GENERATED from emulator/abi/abi.ts',
    '# by `npm run gen-header`; do not edit by hand.',
  ];
  for (const line of generateHeader().split('\n')) {
    const m = /^#define (SGIOV_\w+)\s+(\S.*?)\s*(\/\*.*)?$/.exec(line); // function-like macros have '(' after the name: no match
    if (!m || m[1] === 'SGIOV_ABI_H' || /^SGIOV_U\d+$/.test(m[1]!)) continue;
    const expr = /^\(1u << (\d+)\)$/.exec(m[2]!);
    out.push(`${m[1]}=${expr ? '0x' + ((1 << Number(expr[1])) >>> 0).toString(16) : m[2]}`);
  }
  return out.join('\n') + '\n';
}

export const HEADER_PATH = join(repoRoot(), 'guest-driver', 'include', 'sgiov_abi.h');
export const SHELL_PATH = join(repoRoot(), 'guest-driver', 'include', 'sgiov_abi.sh');

function main(argv: string[]): number {
  const files: [string, string][] = [
    [HEADER_PATH, generateHeader()],
    [SHELL_PATH, generateShell()],
  ];
  if (argv.includes('--write')) {
    for (const [path, text] of files) writeFileSync(path, text);
    return 0;
  }
  if (argv.includes('--check')) {
    let rc = 0;
    for (const [path, text] of files) {
      let committed = '';
      try {
        committed = readFileSync(path, 'utf8');
      } catch {
        /* missing counts as stale */
      }
      if (committed !== text) {
        process.stderr.write(`${path} is stale: run npm run gen-header\n`);
        rc = 1;
      }
    }
    return rc;
  }
  process.stdout.write(files[0]![1]);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  process.exitCode = main(process.argv.slice(2));
