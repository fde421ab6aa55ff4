// Checks a running server from outside: a console and a browser exchange messages both ways, or a browser
// finds an earlier one in the transcript. Usage: node scripts/room-roundtrip.mjs URL CONSOLE_PORT ROOM TEXT [--expect-stored]
import { connect } from 'node:net';
import WebSocket from 'ws';

const [url, consolePort, room, text, mode] = process.argv.slice(2);
if (!url || !consolePort || !room || !text) {
  console.error('usage: room-roundtrip.mjs URL CONSOLE_PORT ROOM TEXT [--expect-stored]');
  process.exit(2);
}
const deadline = setTimeout(() => {
  console.error(`no round trip within 10 s (${mode ?? 'send'} "${text}")`);
  process.exit(1);
}, 10_000);

/** Frames received, and a way to wait for one. */
function frameLog() {
  const frames = [];
  const waiters = [];
  return {
    push(frame) {
      frames.push(frame);
      for (const wake of waiters.splice(0)) wake();
    },
    waitFor(match) {
      return new Promise((resolve) => {
        const check = () => {
          const found = frames.find(match);
          if (found) resolve(found);
          else waiters.push(check);
        };
        check();
      });
    },
  };
}

/** A browser on /ws (dev mode), resumed from `since` if given. */
function browser(since) {
  const address = new URL('/ws', url.replace(/^http/u, 'ws'));
  address.searchParams.set('user', 'check-browser');
  address.searchParams.set('room', room);
  if (since !== undefined) address.searchParams.set('since', String(since));
  const ws = new WebSocket(address);
  const log = frameLog();
  ws.on('message', (data) => log.push(JSON.parse(String(data))));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, log }));
    ws.once('error', reject);
  });
}

/** A protocol-2 console on the NDJSON door. */
function console2() {
  const socket = connect(Number(consolePort), '127.0.0.1');
  const log = frameLog();
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) log.push(JSON.parse(line));
  });
  const send = (frame) => socket.write(`${JSON.stringify(frame)}\n`);
  send({ type: 'hello', room, user: 'check-console', protocol: 2 });
  return { socket, log, send };
}

const isMessage = (want) => (f) => f.type === 'message' && f.text === want;

if (mode === '--expect-stored') {
  const b = await browser(0);
  const found = await b.log.waitFor(isMessage(text));
  console.log(`stored: "${found.text}" id=${found.id} seq=${found.seq}`);
  b.ws.close();
} else {
  const b = await browser();
  await b.log.waitFor((f) => f.type === 'welcome');
  const c = console2();
  await c.log.waitFor((f) => f.type === 'welcome');
  c.send({ type: 'message', text });
  const echo = await c.log.waitFor(isMessage(text));
  const seen = await b.log.waitFor(isMessage(text));
  if (seen.id !== echo.id) throw new Error('the browser saw a different message than the console sent');
  const reply = `${text} (reply)`;
  b.ws.send(JSON.stringify({ type: 'message', text: reply }));
  await c.log.waitFor(isMessage(reply));
  console.log(`round trip: console → browser "${text}" id=${echo.id}; browser → console "${reply}"`);
  c.socket.end();
  b.ws.close();
}
clearTimeout(deadline);
