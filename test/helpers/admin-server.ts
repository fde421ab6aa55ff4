// A server with an admin who is a console that proved its SSH key: `ada`, her key enrolled with
// `runspec-room keys add` before the start, named in CONSOLE_ROOM_ADMINS.
import { join } from 'node:path';
import { expect } from 'vitest';
import type { ConsoleClient } from './clients.ts';
import { tempDir } from './server.ts';
import { runCli, type Spawned, spawnServer } from './spawn.ts';
import { keyConsole, makeKey, sign } from './ssh.ts';

export interface AdminServer {
  readonly server: Spawned;
  /** Ada's console, proven and welcomed as an admin in the room asked for. */
  readonly ada: ConsoleClient;
  stop(): Promise<void>;
}

/** Start the server, and Ada's console in `room`. */
export async function startWithAdminConsole(room: string): Promise<AdminServer> {
  const { dir, cleanup } = await tempDir();
  const db = join(dir, 'room.db');
  const key = await makeKey(dir, 'ada');
  expect((await runCli(['keys', 'add', 'ada', key.pub, '--db', db])).code).toBe(0);
  const server = await spawnServer(['--port', '0', '--ndjson-port', '0', '--db', db], {
    CONSOLE_ROOM_ADMINS: 'ada',
  });
  const proven = await keyConsole(server.consolePort, { room, user: 'ada', key: key.pub }, (n) =>
    sign(key.file, n),
  );
  expect(proven.answer).toMatchObject({ type: 'welcome', admin: true });
  const ada = proven.client;
  return {
    server,
    ada,
    async stop() {
      ada.close();
      if (server.proc.exitCode === null) await server.stop();
      await cleanup();
    },
  };
}
