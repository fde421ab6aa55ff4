// The subcommands of `runspec-room`, besides serving (the default): each a module loaded when asked
// for, so serving loads none of them.

/** What a subcommand is handed and gives back: its arguments, the environment, and an exit code. */
export interface CommandContext {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** A subcommand: runs to completion and says how the process should exit. */
export type Command = (context: CommandContext) => Promise<number>;

/** The subcommands, by name, with one line of help each. */
export const COMMANDS: Record<string, { help: string; load: () => Promise<Command> }> = {
  console: {
    help: 'a console for a room: the transcript and a prompt, or stdin lines sent as messages',
    load: async () => (await import('../client/terminal.ts')).runConsole,
  },
  mcp: {
    help: 'a Model Context Protocol server over stdio, so an agent uses rooms as tools',
    load: async () => (await import('../client/mcp.ts')).runMcp,
  },
};

/** A usage mistake in a subcommand's arguments: one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The --help lines listing the subcommands. */
export function commandsHelp(): string {
  const names = Object.keys(COMMANDS);
  if (names.length === 0) return '';
  const width = Math.max(...names.map((n) => n.length));
  return [
    '',
    'Commands (runspec-room COMMAND --help for each):',
    ...names.map((name) => `  ${name.padEnd(width)}  ${COMMANDS[name]?.help ?? ''}`),
    '',
  ].join('\n');
}
