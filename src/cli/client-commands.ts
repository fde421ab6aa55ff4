// The clients in the package, as subcommands: on Node only (the Deno entry serves and runs the
// database's subcommands).
import type { CommandTable } from './commands.ts';

/** `runspec-room console` and `runspec-room mcp`. */
export const CLIENT_COMMANDS: CommandTable = {
  console: {
    help: 'a console for a room: the transcript and a prompt, or stdin lines sent as messages',
    load: async () => (await import('../client/terminal.ts')).runConsole,
  },
  mcp: {
    help: 'a Model Context Protocol server over stdio, so an agent uses rooms as tools',
    load: async () => (await import('../client/mcp.ts')).runMcp,
  },
};
