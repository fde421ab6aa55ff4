// The real writer thread, except that a batch holding a message with the text "crash" ends the
// thread before it is written: for tests of what the server does when its writer dies.
import { parentPort } from 'node:worker_threads';

parentPort?.on('message', (request: { args?: unknown[] }) => {
  if (request.args?.includes('crash')) process.exit(3);
});
await import('../../src/store/append-worker.ts');
