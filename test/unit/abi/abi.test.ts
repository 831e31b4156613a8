import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BARS, DOORBELLS, REGISTERS } from '../../../emulator/abi/abi.js';
import { generateHeader, generateShell, HEADER_PATH, SHELL_PATH } from '../../../emulator/abi/gen-header.js';

describe('ABI', () => {
  it('the committed C header is what abi.ts generates (run npm run gen-header if not)', () => {
    expect(readFileSync(HEADER_PATH, 'utf8')).toBe(generateHeader());
  });

  it('the committed shell definitions are current and match the header', () => {
    const sh = generateShell();
    expect(readFileSync(SHELL_PATH, 'utf8')).toBe(sh);
    expect(sh).toMatch(/^SGIOV_REG_DMA_SRC=0x100$/m);
    expect(sh).toMatch(/^SGIOV_CONTROL_RESET=0x80000000$/m);
    expect(sh).toMatch(/^SGIOV_ERR_BAD_DOORBELL=6$/m);
    expect(sh).not.toMatch(/\(|\/\*/);
  });

  it('the header defines every register, doorbell and error code', () => {
    const h = generateHeader();
    for (const r of REGISTERS)
      expect(h).toMatch(new RegExp(`#define SGIOV_REG_${r.name}\\s+0x0*${r.offset.toString(16)}\\b`));
    expect(h).toMatch(/#define SGIOV_DOORBELL_DMA\s+0x1000/);
    expect(h).toMatch(/#define SGIOV_ERR_DMA_UNMAPPED\s+1/);
  });

  it('registers are aligned, do not overlap, and stay below the doorbells', () => {
    const sorted = [...REGISTERS].sort((a, b) => a.offset - b.offset);
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      expect(r.offset % r.width, r.name).toBe(0);
      expect(r.offset + r.width, r.name).toBeLessThanOrEqual(DOORBELLS.BASE);
      const next = sorted[i + 1];
      if (next)
        expect(r.offset + r.width, `${r.name} overlaps ${next.name}`).toBeLessThanOrEqual(next.offset);
    }
    expect(new Set(REGISTERS.map((r) => r.name)).size).toBe(REGISTERS.length);
    expect(DOORBELLS.BASE + DOORBELLS.SIZE).toBeLessThanOrEqual(BARS.REGS_BAR_SIZE);
    expect(BARS.MSIX_PBA_OFFSET).toBeGreaterThanOrEqual(BARS.MSIX_TABLE_OFFSET + BARS.MSIX_VECTORS * 16);
  });
});
