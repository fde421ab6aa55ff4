// One suite, every door: what both the console door and the browser door promise, over real sockets
// to the server running in this process (test/deno.test.ts runs the same suite against Deno).
import { afterAll, beforeAll } from 'vitest';
import { describeDoors } from './helpers/door-suite.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';

let server: TestServer;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const tmp = await tempDir();
  cleanup = tmp.cleanup;
  server = await startTestServer(`${tmp.dir}/room.db`);
});

afterAll(async () => {
  await server.stop();
  await cleanup();
});

describeDoors(() => server);
