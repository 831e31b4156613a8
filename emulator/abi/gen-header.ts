/**
 * Generates the C header of the guest/device ABI from abi.ts.
 *   node dist/emulator/abi/gen-header.js           print it
 *   node dist/emulator/abi/gen-header.js --write   write guest-driver/include/sgiov_abi.h
 *   node dist/emulator/abi/gen-header.js --check   exit 1 when the committed header is stale
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { repoRoot } from '../util/paths.js';
import { ABI_VERSION, BARS, BITS, CONSTANTS, DOORBELLS, ENUMS, PCI_IDS, REGISTERS } from './abi.js';

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
  for (const [k, v] of Object.entries(BARS)) out.push(define(`SGIOV_${k}`, k.endsWith('BAR') || k.endsWith('VECTORS') ? String(v) : hex(v)));
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
  out.push('#endif /* SGIOV_ABI_H */');
  out.push('');
  return out.join('\n');
}

export const HEADER_PATH = join(repoRoot(), 'guest-driver', 'include', 'sgiov_abi.h');

function main(argv: string[]): number {
  const text = generateHeader();
  if (argv.includes('--write')) {
    writeFileSync(HEADER_PATH, text);
    return 0;
  }
  if (argv.includes('--check')) {
    let committed = '';
    try { committed = readFileSync(HEADER_PATH, 'utf8'); } catch { /* missing counts as stale */ }
    if (committed !== text) {
      process.stderr.write(`${HEADER_PATH} is stale: run npm run gen-header\n`);
      return 1;
    }
    return 0;
  }
  process.stdout.write(text);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
