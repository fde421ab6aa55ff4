// The real writer thread, with two ways to die, for tests of what happens when the writer dies:
// a batch holding the text "crash" ends the thread before it is written (every time); a batch
// holding "crash after commit" is written, and the thread ends before it answers (the first time
// only: a marker file beside the database remembers it). Started through typescriptThread().
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import type { WriterData, WriterReply, WriterRequest } from '../../src/store/writer-protocol.ts';

const port = parentPort;
const marker = `${fileURLToPath((workerData as WriterData).url)}.crashed`;
const onRequest = (request: WriterRequest): void => {
  // Let the thread end once the real one has closed: a listener left on the port would keep it up.
  if ('close' in request) port?.off('message', onRequest);
  if (!('args' in request)) return;
  if (request.args.includes('crash')) process.exit(3);
  if (request.args.includes('crash after commit') && !existsSync(marker) && port) {
    writeFileSync(marker, '');
    const post = port.postMessage.bind(port);
    port.postMessage = (reply: WriterReply) => {
      if ('n' in reply && reply.n === request.n) process.exit(4);
      post(reply);
    };
  }
};
port?.on('message', onRequest);
await import('../../src/store/append-worker.ts');
