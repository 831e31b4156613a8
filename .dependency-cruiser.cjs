/**
 * The import layers of sgiov (npm run lint; CI fails on a new upward import).
 * Each folder of emulator/ may import only the folders listed for it; qemu/
 * (the harness) may import the emulator but not its CLI; tests may import all.
 *   cli -> control / observe / host -> model -> faults, sched, pci, abi -> util
 *   host -> fabric, client, native -> util
 */
const allowed = {
  util: [],
  native: ['util'],
  abi: ['util'],
  pci: ['abi', 'util'],
  sched: ['abi', 'util'],
  faults: ['abi', 'util'],
  model: ['abi', 'pci', 'sched', 'faults', 'util'],
  fabric: ['native', 'abi', 'util'],
  client: ['native', 'abi', 'util'],
  host: ['model', 'fabric', 'client', 'native', 'abi', 'pci', 'sched', 'faults', 'util'],
  control: ['host', 'model', 'fabric', 'faults', 'sched', 'abi', 'pci', 'util'],
  // Metrics endpoint, log format: beside the control interface, over the carriers' snapshot.
  observe: ['host', 'model', 'fabric', 'faults', 'sched', 'abi', 'pci', 'util'],
};
const layer = (names) => `^emulator/(${names.join('|')})/`;

module.exports = {
  forbidden: [
    ...Object.entries(allowed).map(([from, to]) => ({
      name: `layer-${from}`,
      comment: `emulator/${from}/ may import only ${to.length ? to.map((t) => `emulator/${t}/`).join(', ') : 'node and npm modules'}`,
      severity: 'error',
      from: { path: `^emulator/${from}/` },
      to: { path: '^(emulator|qemu|test)/', pathNot: [`^emulator/${from}/`, ...(to.length ? [layer(to)] : [])] },
    })),
    {
      name: 'emulator-not-harness',
      comment: 'the emulator never imports the harness (qemu/) or the tests; only its CLI may run the harness',
      severity: 'error',
      from: { path: '^emulator/', pathNot: '^emulator/cli/' },
      to: { path: '^(qemu|test)/' },
    },
    {
      name: 'harness-not-cli',
      comment: 'the harness (qemu/) uses the emulator, never its CLI',
      severity: 'error',
      from: { path: '^qemu/' },
      to: { path: '^(emulator/cli|test)/' },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles at run time (a cycle through type-only imports vanishes when compiled)',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
