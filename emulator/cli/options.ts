/**
 * A subcommand's options as data: one table gives node:util's parseArgs its
 * configuration, the subcommand's --help (defaults and units beside each
 * option) and the suggestion for a mistyped flag ("did you mean --control?").
 */
import { parseArgs } from 'node:util';
import leven from 'leven';

export interface OptionSpec {
  name: string;
  short?: string;
  /** A flag without a value, or one that takes a value (named by `arg`). */
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** The value's placeholder in the help: PATH, MS, HOST:PORT ... */
  arg?: string;
  help: string;
  /** What applies when the option is absent, with its unit ("10000 ms"); shown in the help. */
  default?: string;
}

export interface CommandSpec {
  name: string;
  /** Usage lines after "sgiov NAME". */
  usage: string[];
  summary: string;
  options: OptionSpec[];
  /** Text after the options (notes, examples). */
  footer?: string;
}

/** Bad command-line input: the caller prints it as one line and exits 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

const HELP_OPTION: OptionSpec = { name: 'help', short: 'h', type: 'boolean', help: 'this help' };

/** The candidate closest to `word` when it is close enough to be a typo. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = leven(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  // A third of the word may be wrong (at least 2 edits: "--contrl", "--sokcet").
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  help: boolean;
}

/**
 * Parses argv against the table. An unknown option is a UsageError naming it
 * and, when one is close, the option meant.
 */
export function parseCommand(spec: CommandSpec, argv: string[]): Parsed {
  const all = [...spec.options, HELP_OPTION];
  const options = Object.fromEntries(
    all.map((o) => [
      o.name,
      { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
    ]),
  );
  // Loose first, to name an unknown option with a suggestion before parseArgs' own message.
  const loose = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  for (const t of loose.tokens) {
    if (t.kind !== 'option') continue;
    if (all.some((o) => o.name === t.name || o.short === t.name)) continue;
    const flags = all.map((o) => `--${o.name}`);
    const hint = suggest(t.rawName, flags);
    throw new UsageError(`unknown option '${t.rawName}'${hint ? ` (did you mean ${hint}?)` : ''}`, spec.name);
  }
  if (loose.values.help === true) return { values: {}, positionals: [], help: true };
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true });
    return { values: values as Parsed['values'], positionals, help: false };
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]!, spec.name);
  }
}

/** The subcommand's --help: usage, then each option with its default. */
export function commandHelp(spec: CommandSpec): string {
  const rows = [...spec.options, HELP_OPTION].map((o) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.arg ? ` ${o.arg}` : ''}`;
    const text = o.help + (o.default !== undefined ? ` (default ${o.default})` : '');
    return [flag, text] as const;
  });
  const w = Math.max(...rows.map(([f]) => f.length)) + 2;
  const lines = rows.map(([f, t]) => {
    // Long texts wrap under their column.
    const words = t.split(' ');
    const out: string[] = [];
    let cur = '';
    for (const word of words) {
      if (cur && cur.length + 1 + word.length > 100 - w - 2) {
        out.push(cur);
        cur = word;
      } else cur = cur ? `${cur} ${word}` : word;
    }
    out.push(cur);
    return `  ${f.padEnd(w)}${out.join(`\n  ${' '.repeat(w)}`)}`;
  });
  return (
    `sgiov ${spec.name} - ${spec.summary}\n\nUsage:\n${spec.usage.map((u) => `  sgiov ${spec.name} ${u}`).join('\n')}\n\n` +
    `Options:\n${lines.join('\n')}\n${spec.footer ? `\n${spec.footer}` : ''}`
  );
}
