/** Shared by the faults-wiring tests: a device on the in-memory bus with a plan, the stress workload, the contract. */
import { expect } from 'vitest';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../emulator/host/bus-access.js';
import { validatePlan, POINT_NAMES, type Point } from '../../emulator/faults/plan.js';
import { runFaultStress, type FaultStressReport } from '../../emulator/client/fault-workload.js';
import type { SgiovDevice } from '../../emulator/model/device.js';

export function injections(dev: SgiovDevice): number {
  let n = 0;
  for (let p = 0; p < POINT_NAMES.length; p++) n += dev.faults.injected(p as Point);
  return n;
}

export function rig(rules: unknown[], opts: { seed?: number } = {}) {
  const { bus, dev } = enabledDevice(64 << 20);
  dev.faults.load(validatePlan({ seed: opts.seed ?? 1, rules }));
  const drv = new SgiovSocketDriver(busAccess(bus, dev), { d2hSlots: 4096, timeoutMs: 5000 });
  return { bus, dev, drv };
}

export function stress(r: ReturnType<typeof rig>, messagesPerPair = 150): FaultStressReport {
  return runFaultStress(r.drv, {
    sockets: 8,
    messagesPerPair,
    minSize: 16,
    maxSize: 3000,
    ringSize: 4096,
    deadlineMs: 20_000,
    injections: () => injections(r.dev),
  });
}

/** The contract of issue #6. */
export function holds(rep: FaultStressReport): void {
  expect(rep.lost).toBe(0);
  expect(rep.duplicated).toBe(0);
  expect(rep.corrupted).toBe(0);
  expect(rep.reordered).toBe(0);
  expect(rep.delivered + rep.failed).toBe(rep.sent);
  expect(rep.sent).toBeGreaterThan(0);
}

export const rule = (
  point: string,
  action: Record<string, unknown>,
  trigger: Record<string, unknown> = { every: 7 },
  match?: Record<string, unknown>,
) => ({ point, trigger, do: action, ...(match ? { match } : {}) });
