// The real writer thread, with two ways to die, for tests of what happens when the writer dies:
// a batch holding the text "crash" ends the thread before it is written (every time); a batch
// holding "crash after commit" is written, and the thread ends before it answers (the first time
// only: a marker file beside the database remembers it).
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';

const port = parentPort;
const marker = `${fileURLToPath((workerData as { url: string }).url)}.crashed`;
port?.on('message', (request: { n?: number; args?: unknown[] }) => {
  if (request.args?.includes('crash')) process.exit(3);
  if (request.args?.includes('crash after commit') && !existsSync(marker) && port) {
    writeFileSync(marker, '');
    const post = port.postMessage.bind(port);
    port.postMessage = (reply: { n?: number }) => {
      if (reply.n === request.n) process.exit(4);
      post(reply);
    };
  }
});
await import('../../src/store/append-worker.ts');
