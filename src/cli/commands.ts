// The subcommands of `runspec-room`, besides serving (the default): each a module loaded when asked
// for, so serving loads none of them.
import { parseArgs } from 'node:util';

/** What a subcommand is handed and gives back: its arguments, the environment, and an exit code. */
export interface CommandContext {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  stdout: (text: string) => void;
  /** Write to standard output, resolving once the reader has caught up (for output of any length). */
  write: (text: string) => Promise<void>;
  stderr: (text: string) => void;
}

/** A subcommand: runs to completion and says how the process should exit. */
export type Command = (context: CommandContext) => Promise<number>;

/** Subcommands by name, each with one line of help and how to load it. */
export type CommandTable = Record<string, { help: string; load: () => Promise<Command> }>;

/** The subcommands that work on the database: on Node and on Deno. */
export const STORE_COMMANDS: CommandTable = {
  keys: {
    help: 'add, list or remove the SSH keys that prove console names',
    load: async () => (await import('./keys.ts')).default,
  },
  audit: {
    help: 'list admin actions and key changes',
    load: async () => (await import('./audit.ts')).default,
  },
  export: {
    help: "write a room's transcript as NDJSON message frames or Markdown",
    load: async () => (await import('./export.ts')).default,
  },
  backup: {
    help: 'copy the database, consistently, while the server runs',
    load: async () => (await import('./backup.ts')).default,
  },
};

/** A usage mistake in a subcommand's arguments: one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A subcommand could not do what it was asked (a database it cannot open, a key it cannot take): one line, exit code 1. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}

/** The --help lines listing the subcommands of `table`. */
export function commandsHelp(table: CommandTable): string {
  const names = Object.keys(table);
  if (names.length === 0) return '';
  const width = Math.max(...names.map((n) => n.length));
  return [
    '',
    'Commands (runspec-room COMMAND --help for each):',
    ...names.map((name) => `  ${name.padEnd(width)}  ${table[name]?.help ?? ''}`),
    '',
  ].join('\n');
}

/** The flags a subcommand takes, as node:util's parseArgs describes them. */
export type CommandFlags = Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** A subcommand's flags, each a string or a switch, and its positional arguments. */
export interface CommandArgs<F extends CommandFlags> {
  values: { [K in keyof F]?: F[K]['type'] extends 'string' ? string : boolean };
  positionals: string[];
}

/**
 * Read a subcommand's arguments: its flags and `--db` (every subcommand works on a database) and
 * `--help`; a mistake is a UsageError that points at the help. Undefined when --help was asked for
 * (the usage is printed).
 */
export function commandArgs<F extends CommandFlags>(
  context: CommandContext,
  name: string,
  usage: string,
  flags: F,
  allowPositionals = false,
): CommandArgs<F & { db: { type: 'string' } }> | undefined {
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...context.argv],
      allowPositionals,
      strict: true,
      options: { ...flags, db: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split('\n')[0]} (see runspec-room ${name} --help)`);
  }
  if (parsed.values.help) {
    context.stdout(usage);
    return undefined;
  }
  return parsed as CommandArgs<F & { db: { type: 'string' } }>;
}
