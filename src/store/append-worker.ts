// The transcript writer thread: owns one connection to the database file and runs the appends on it,
// so a commit and its fsync never stall the event loop that serves the sockets.
import { parentPort, workerData } from 'node:worker_threads';
import { createClient } from '@libsql/client';
import { SqlAppender } from './append.ts';
import { setConnectionPragmas } from './db.ts';
import { type WriterData, type WriterReply, type WriterRequest, writerFailure } from './writer-protocol.ts';

const port = parentPort;
if (!port) throw new Error('append-worker runs as a worker thread');
const { url } = workerData as WriterData;
const post = (reply: WriterReply): void => port.postMessage(reply);

const client = createClient({ url, concurrency: 1 });
const appender = new SqlAppender(client);

/** Close the connection and stop listening: the thread then ends (exit code 0). */
const stop = (): void => {
  client.close();
  port.off('message', onRequest);
};

// Requests run one after another, in the order they arrived. The first is a write: a database that
// opens but cannot take one (a read-only file, a full disk) is refused before anyone is told `ready`.
let chain: Promise<void> = setConnectionPragmas(client)
  .then(() => appender.probe())
  .then(
    () => post({ ready: true }),
    (error: unknown) => {
      post({ failed: writerFailure(error) });
      stop();
    },
  );

function onRequest(request: WriterRequest): void {
  chain = chain.then(async () => {
    if ('close' in request) {
      stop();
      return;
    }
    try {
      if ('durability' in request) post({ n: request.n, durability: await appender.durability() });
      else if ('args' in request)
        post({ n: request.n, appended: await appender.appendFlat(request.args, request.retried) });
      else {
        if ('ping' in request) await appender.ping();
        if ('probe' in request) await appender.probe();
        if ('markers' in request) await appender.saveMarkers(request.markers);
        if ('people' in request) await appender.remember(request.people, request.now);
        post({ n: request.n, done: true });
      }
    } catch (error) {
      post({ n: request.n, error: writerFailure(error) });
    }
  });
}

port.on('message', onRequest);
