// The search thread: full-text searches of a local database run here, on a read-only connection of
// their own, one after another, so a search that walks many matches never holds the event loop that
// serves the sockets.
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { nativeConnection } from './native-reads.ts';
import type { SearchData, SearchReply, SearchRequest } from './search-thread.ts';

const port = parentPort;
if (!port) throw new Error('search-worker runs as a worker thread');
const { url } = workerData as SearchData;
const post = (reply: SearchReply): void => port.postMessage(reply);

let reads: ReturnType<typeof nativeConnection> | undefined;
try {
  reads = nativeConnection(fileURLToPath(url));
  post({ ready: true });
} catch (error) {
  post({ failed: String((error as Error)?.message ?? error) });
}

// The main thread ends this one: at close, or at once when it could not open the database.
port.on('message', (request: SearchRequest) => {
  if (!reads) return;
  try {
    post({ n: request.n, rows: reads.query(request.sql, request.args) });
  } catch (error) {
    post({ n: request.n, error: String((error as Error)?.message ?? error) });
  }
});
