// A quick throughput check: one console sends as fast as echoes allow into a room of browsers.
// Usage: npm run bench:quick -- [--browsers 10] [--seconds 5] [--window 64]
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { spawnServerProcess } from '../support/server-process.ts';
import { cpuSeconds, rssMiB } from './proc.ts';
import { OURS_ENV } from './servers.ts';

const { values } = parseArgs({
  options: {
    browsers: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '5' },
    window: { type: 'string', default: '64' },
  },
});
const browsers = Number(values.browsers);
const seconds = Number(values.seconds);
const window = Number(values.window);

const dir = mkdtempSync(join(tmpdir(), 'runspec-bench-'));
const server = await spawnServerProcess(
  process.execPath,
  ['dist/main.js', '--port', '0', '--ndjson-port', '0', '--db', join(dir, 'b.db')],
  { env: { ...OURS_ENV, CONSOLE_ROOM_LOG_LEVEL: 'info' }, ownGroup: false, maxOutput: 100_000 },
);
const pid = server.proc.pid as number;
const url = server.url ?? '';
const { consolePort } = server;

let delivered = 0;
const sockets: WebSocket[] = [];
for (let i = 0; i < browsers; i++) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?user=b${i}&room=bench`);
  ws.on('message', (data) => {
    if (String(data).startsWith('{"type":"message"')) delivered += 1;
  });
  await new Promise((resolve) => ws.once('open', resolve));
  sockets.push(ws);
}

const sock = connect(consolePort, '127.0.0.1');
await new Promise((resolve) => sock.once('connect', resolve));
sock.write(`${JSON.stringify({ type: 'hello', room: 'bench', user: 'sender' })}\n`);
const body = 'x'.repeat(200);
let inflight = 0;
let echoed = 0;
let sent = 0;
let measuring = false;
const latencies: number[] = [];
const sentAt = new Map<number, number>();
const sendOne = (): void => {
  sentAt.set(sent, performance.now());
  sock.write(`${JSON.stringify({ type: 'message', text: `${sent} ${body}` })}\n`);
  sent += 1;
  inflight += 1;
};
let stopAt = 0;
createInterface({ input: sock }).on('line', (line) => {
  const frame = JSON.parse(line) as { type: string; text?: string };
  if (frame.type !== 'message') return;
  inflight -= 1;
  const n = Number(frame.text?.split(' ')[0]);
  const t0 = sentAt.get(n);
  sentAt.delete(n);
  if (measuring && t0 !== undefined) {
    echoed += 1;
    latencies.push(performance.now() - t0);
  }
  if (performance.now() < stopAt) while (inflight < window) sendOne();
});

// Warm up for one second, then measure.
stopAt = performance.now() + 1000 + seconds * 1000;
while (inflight < window) sendOne();
await new Promise((resolve) => setTimeout(resolve, 1000));
measuring = true;
delivered = 0;
const cpu0 = cpuSeconds(pid);
const t0 = performance.now();
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const elapsed = (performance.now() - t0) / 1000;
const cpu = cpuSeconds(pid) - cpu0;
measuring = false;
latencies.sort((a, b) => a - b);
const pct = (p: number): string =>
  (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0).toFixed(2);
console.log(
  JSON.stringify(
    {
      limits: 'per-connection limits lifted for capacity (bench/servers.ts OURS_ENV)',
      browsers,
      window,
      seconds: Number(elapsed.toFixed(2)),
      messagesPerSecond: Math.round(echoed / elapsed),
      browserDeliveriesPerSecond: Math.round(delivered / elapsed),
      echoLatencyMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1) },
      serverCpuPercent: Math.round((cpu / elapsed) * 100),
      serverRssMiB: Math.round(rssMiB(pid)),
    },
    null,
    2,
  ),
);
sock.destroy();
for (const ws of sockets) ws.terminate();
await server.stop('SIGTERM');
rmSync(dir, { recursive: true, force: true });
