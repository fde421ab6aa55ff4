// The transcript writer thread: owns one connection to the database file and does the writes on it,
// so a commit and its fsync never stall the event loop that serves the sockets. Writes that are
// waiting when the thread gets to them commit together, in one transaction.
import { fileURLToPath } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { unflatten } from './append.ts';
import { NativeAppender, type Write } from './native-append.ts';
import {
  type WriterData,
  type WriterReply,
  type WriterRequest,
  type WriterTask,
  writerFailure,
} from './writer-protocol.ts';

const port = parentPort;
if (!port) throw new Error('append-worker runs as a worker thread');
const { url } = workerData as WriterData;
const post = (reply: WriterReply): void => port.postMessage(reply);

/**
 * The connection, once it has proved a write: a database that opens but cannot take one (a read-only
 * file, a full disk) is refused before anyone is told `ready`, and the thread then ends by itself.
 */
function open(): NativeAppender | undefined {
  let opened: NativeAppender | undefined;
  try {
    opened = new NativeAppender(fileURLToPath(url));
    opened.setPragmas();
    opened.probe();
    post({ ready: true });
    return opened;
  } catch (error) {
    post({ failed: writerFailure(error) });
    opened?.close();
    return undefined;
  }
}
const opened = open();
const appender = opened as NativeAppender;

type Numbered = WriterTask & { n: number };

/** A task as a write of a transaction, or undefined when it is not one. */
function asWrite(task: WriterTask): Write | undefined {
  if ('args' in task) {
    const batch = Array.from({ length: task.args.length / 8 }, (_, i) => unflatten(task.args, i));
    return { batch, retried: task.retried };
  }
  if ('markers' in task) return { markers: task.markers };
  if ('people' in task) return { people: task.people, now: task.now };
  return undefined;
}

/** Commit writes together; if that fails and there were several, each alone, so only a bad one fails. */
function commit(tasks: Numbered[], writes: Write[]): void {
  try {
    const outcomes = appender.write(writes);
    tasks.forEach((task, i) => {
      const appended = outcomes[i];
      post(appended ? { n: task.n, appended } : { n: task.n, done: true });
    });
  } catch (error) {
    if (tasks.length === 1) {
      post({ n: (tasks[0] as Numbered).n, error: writerFailure(error) });
      return;
    }
    for (const [i, task] of tasks.entries()) commit([task], [writes[i] as Write]);
  }
}

/** Requests in the order they came: consecutive writes commit as one, the rest one by one. */
function serve(requests: WriterRequest[]): void {
  let tasks: Numbered[] = [];
  let writes: Write[] = [];
  const flush = (): void => {
    if (tasks.length > 0) commit(tasks, writes);
    tasks = [];
    writes = [];
  };
  for (const request of requests) {
    if ('close' in request) {
      flush();
      appender.close();
      // With no listener left the thread ends by itself.
      port?.off('message', onMessage);
      return;
    }
    const write = asWrite(request);
    if (write) {
      tasks.push(request);
      writes.push(write);
      continue;
    }
    flush();
    try {
      if ('durability' in request) post({ n: request.n, durability: appender.durability() });
      else if ('prune' in request)
        post({ n: request.n, pruned: appender.prune(request.prune.before, request.prune.limit) });
      else if ('index' in request) post({ n: request.n, indexed: appender.index(request.index.limit) });
      else {
        if ('ping' in request) appender.ping();
        if ('probe' in request) appender.probe();
        post({ n: request.n, done: true });
      }
    } catch (error) {
      post({ n: request.n, error: writerFailure(error) });
    }
  }
  flush();
}

let waiting: WriterRequest[] = [];

// Messages already queued on the port are dispatched one after another before the next turn of the
// loop, so everything that arrived while the last commit ran is served together.
function onMessage(request: WriterRequest): void {
  waiting.push(request);
  if (waiting.length > 1) return;
  setImmediate(() => {
    const requests = waiting;
    waiting = [];
    serve(requests);
  });
}

if (opened) port.on('message', onMessage);
