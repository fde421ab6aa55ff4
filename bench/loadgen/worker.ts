// A load-generator worker thread: holds connections, sends on schedule (open loop), checks every delivery.
import { readFileSync } from 'node:fs';
import { createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { type Conn, open, type Target } from './clients.ts';
import type {
  CollectResult,
  Command,
  ConnectResult,
  GenUsage,
  JoinResult,
  MemberSpec,
  ResumeResult,
  VerifyResult,
} from './commands.ts';
import { messageText, nowNs, type Stamp } from './text.ts';

interface Member {
  spec: MemberSpec;
  conn: Conn | undefined;
  /** Highest n seen per sender. */
  last: Map<number, number>;
  gaps: number;
  duplicated: number;
  reordered: number;
  /** Not counted in latency or loss (a laggard, or a member that failed to connect). */
  excluded: boolean;
  received: number;
  closedCode: number | undefined;
}

interface Sender {
  member: Member;
  sender: number;
  n: number;
  next: number;
  interval: number;
  scheduled: number;
}

const port = parentPort;
if (!port) throw new Error('loadgen worker must run in a worker thread');

const members = new Map<number, Member>();
const senders: Sender[] = [];
let senderRooms = new Map<number, string>();
let hist = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
let win = { start: 0, end: 0, count: 0 };
let sendUntil = 0;
let ticking: NodeJS.Timeout | undefined;
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
let usageMark = { cpu: 0, at: 0, elu: performance.eventLoopUtilization() };
let usage: GenUsage = { cpu: 0, elu: 0, eldP99Ms: 0 };

function threadCpuSeconds(): number {
  const fields = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function markUsage(): void {
  usageMark = { cpu: threadCpuSeconds(), at: performance.now(), elu: performance.eventLoopUtilization() };
  eld.reset();
}

function takeUsage(): void {
  const seconds = (performance.now() - usageMark.at) / 1000;
  usage = {
    cpu: seconds > 0 ? (threadCpuSeconds() - usageMark.cpu) / seconds : 0,
    elu: performance.eventLoopUtilization(usageMark.elu).utilization,
    eldP99Ms: eld.percentile(99) / 1e6,
  };
}

function receive(m: Member, stamp: Stamp | undefined): void {
  if (!stamp) return;
  m.received += 1;
  const last = m.last.get(stamp.sender) ?? -1;
  if (stamp.n === last + 1) m.last.set(stamp.sender, stamp.n);
  else if (stamp.n > last + 1) {
    m.gaps += stamp.n - last - 1;
    m.last.set(stamp.sender, stamp.n);
  } else if (stamp.n === last) m.duplicated += 1;
  else m.reordered += 1;
  if (m.excluded || stamp.scheduledNs < win.start || stamp.scheduledNs >= win.end) return;
  win.count += 1;
  hist.record(Math.max(1, Math.round((nowNs() - stamp.scheduledNs) / 1000)));
}

async function connectAll(target: Target, specs: MemberSpec[], concurrency: number): Promise<ConnectResult> {
  const handshakeUs: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < specs.length) {
      const spec = specs[next++] as MemberSpec;
      const m: Member = {
        spec,
        conn: undefined,
        last: new Map(),
        gaps: 0,
        duplicated: 0,
        reordered: 0,
        excluded: false,
        received: 0,
        closedCode: undefined,
      };
      members.set(spec.id, m);
      const start = performance.now();
      try {
        m.conn = await open(target, spec.door, spec.room, spec.user, {
          onMessage: (s) => receive(m, s),
          onWelcome: () => {},
          onClose: (code) => {
            m.closedCode = code;
          },
        });
        handshakeUs.push(Math.round((performance.now() - start) * 1000));
        if (spec.sender !== undefined) {
          senders.push({ member: m, sender: spec.sender, n: 0, next: 0, interval: 0, scheduled: 0 });
        }
      } catch (error) {
        errors += 1;
        firstError ??= String(error);
        m.excluded = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, one));
  return { handshakeUs, errors, firstError, elapsedMs: performance.now() - t0 };
}

function tick(): void {
  const now = nowNs();
  for (const s of senders) {
    while (s.next <= now && s.next < sendUntil) {
      s.member.conn?.send(messageText(s.sender, s.n, Math.round(s.next)));
      s.n += 1;
      if (s.next >= win.start) s.scheduled += 1;
      s.next += s.interval;
    }
  }
  ticking = now < sendUntil ? setTimeout(tick, 1) : undefined;
}

function startStep(startNs: number, windowStartNs: number, endNs: number, ratePerSender: number): void {
  hist = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
  win = { start: windowStartNs, end: endNs, count: 0 };
  sendUntil = endNs;
  const interval = 1e9 / ratePerSender;
  for (const s of senders) {
    s.interval = interval;
    s.next = startNs + Math.random() * interval;
    s.scheduled = 0;
  }
  setTimeout(markUsage, Math.max(0, (windowStartNs - nowNs()) / 1e6));
  setTimeout(takeUsage, Math.max(0, (endNs - nowNs()) / 1e6));
  if (!ticking) tick();
}

function verify(sentPairs: [number, number][]): VerifyResult {
  const sent = new Map(sentPairs);
  const result: VerifyResult = { lost: 0, duplicated: 0, reordered: 0, members: 0 };
  for (const m of members.values()) {
    if (m.excluded) continue;
    result.members += 1;
    result.lost += m.gaps;
    result.duplicated += m.duplicated;
    result.reordered += m.reordered;
    for (const [sender, room] of senderRooms) {
      if (room !== m.spec.room) continue;
      const expected = sent.get(sender) ?? 0;
      result.lost += Math.max(0, expected - 1 - (m.last.get(sender) ?? -1));
    }
  }
  return result;
}

/**
 * Time `count` browsers, one after another, from open to their full backscroll; each leaves once it has
 * it. With `keepOpen` a console stays in the room meanwhile, so the room is open on the server for
 * every join; without, the room is empty between joins.
 */
async function joins(
  target: Target,
  room: string,
  count: number,
  backscroll: number,
  keepOpen: boolean,
): Promise<JoinResult> {
  const result: JoinResult = { toBackscrollUs: [], openUs: [], incomplete: 0 };
  const ignore = { onMessage: () => {}, onWelcome: () => {}, onClose: () => {} };
  const keeper = keepOpen ? await open(target, 'console', room, 'keeper', ignore) : undefined;
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    let opened = 0;
    let got = 0;
    let welcomed = false;
    const done = new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 5000);
      open(target, 'browser', room, `joiner-${i}`, {
        onMessage: () => {
          if (!welcomed) return;
          got += 1;
          if (got === backscroll) {
            clearTimeout(timer);
            resolve(performance.now());
          }
        },
        onWelcome: () => {
          welcomed = true;
        },
        onOpen: () => {
          opened = performance.now();
        },
        onClose: () => {},
      }).then(
        (conn) => void finished.then(() => conn.close()),
        () => resolve(undefined),
      );
    });
    let release: () => void = () => {};
    const finished = new Promise<void>((r) => {
      release = r;
    });
    const end = await done;
    release();
    if (end === undefined) result.incomplete += 1;
    else {
      result.toBackscrollUs.push(Math.round((end - opened) * 1000));
      result.openUs.push(Math.round((opened - start) * 1000));
    }
  }
  keeper?.close();
  return result;
}

async function prefill(target: Target, room: string, count: number, window: number): Promise<number> {
  const t0 = performance.now();
  let sent = 0;
  let echoed = 0;
  let conn: Conn | undefined;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (conn && sent < count && sent - echoed < window) conn.send(messageText(999_999, sent++, nowNs()));
    };
    open(target, 'console', room, 'prefill', {
      onMessage: () => {
        echoed += 1;
        if (echoed === count) resolve();
        else pump();
      },
      onWelcome: () => {},
      onClose: () => {},
    }).then((c) => {
      conn = c;
      pump();
    }, reject);
  });
  conn?.close();
  return performance.now() - t0;
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'connect':
      senderRooms = new Map(cmd.senders.map((s) => [s.sender, s.room]));
      return connectAll(cmd.target, cmd.members, cmd.concurrency);
    case 'step':
      startStep(cmd.startNs, cmd.windowStartNs, cmd.endNs, cmd.ratePerSender);
      return undefined;
    case 'collect': {
      const scheduled: [number, number][] = senders.map((s) => [s.sender, s.scheduled]);
      const result: CollectResult = { hist, inWindow: win.count, scheduled, usage };
      return result;
    }
    case 'received': {
      let total = 0;
      for (const m of members.values()) total += m.received;
      return total;
    }
    case 'sent':
      return senders.map((s) => [s.sender, s.n]);
    case 'verify':
      return verify(cmd.sent);
    case 'pause': {
      const m = members.get(cmd.member);
      if (m) {
        m.excluded = true;
        m.conn?.pause();
      }
      return m !== undefined;
    }
    case 'resume': {
      const m = members.get(cmd.member);
      m?.conn?.resume();
      const until = performance.now() + cmd.waitMs;
      while (m && m.closedCode === undefined && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const result: ResumeResult = { closedCode: m?.closedCode, received: m?.received ?? 0 };
      return result;
    }
    case 'joins':
      return joins(cmd.target, cmd.room, cmd.count, cmd.backscroll, cmd.keepOpen);
    case 'prefill':
      return prefill(cmd.target, cmd.room, cmd.count, cmd.window);
    case 'close':
      sendUntil = 0;
      for (const m of members.values()) m.conn?.close();
      members.clear();
      senders.length = 0;
      return undefined;
  }
}

port.on('message', (msg: { id: number; cmd: Command }) => {
  handle(msg.cmd).then(
    (value) => port.postMessage({ id: msg.id, ok: true, value }),
    (error: unknown) => port.postMessage({ id: msg.id, ok: false, error: String(error) }),
  );
});
