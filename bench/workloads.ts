// The workloads: floor, stepped fan-out (room100, room1000, rooms), slow consumer, idle connections, join.
import type { MemberSpec, SenderSpec } from './loadgen/commands.ts';
import type { LoadGen } from './loadgen/pool.ts';
import { nowNs } from './loadgen/text.ts';
import { CpuMeter, cpuSeconds, machineBusySeconds, RssSampler, rssMiB } from './proc.ts';
import type { ServerHandle } from './servers.ts';
import { type Latency, round, sleep, summarize, summarizeValues } from './stats.ts';

/** Timing shared by every measured step. */
export interface Timing {
  warmupMs: number;
  measureMs: number;
}

/** Lost, duplicated and reordered deliveries over a whole workload. */
export interface Integrity {
  sent: number;
  members: number;
  lost: number;
  duplicated: number;
  reordered: number;
}

/** One offered rate, measured. */
export interface StepResult {
  offeredDps: number;
  achievedDps: number;
  messagesPerSecond: number;
  arrivedPct: number;
  latency: Latency;
  /** Server CPU as a share of one core: the whole process, and its main (event-loop) thread. */
  serverCpu: number;
  serverMainCpu: number;
  serverRssMiB: number;
  /** Server event-loop delay p99 (ms), as the server's preloaded bench agent reports it. */
  serverEldP99Ms?: number;
  /** The server's garbage-collection pauses over the measured window: ms per second, and major ones. */
  serverGc?: { msPerSecond: number; major: number };
  /** Whole generator process CPU (share of one core) and each worker thread's. */
  genCpu: number;
  genWorkerCpu: number[];
  genWorkerElu: number[];
  genSaturated: boolean;
  /** CPU used by everything else on the machine (other processes, kernel), share of one core. */
  otherCpu: number;
  bottleneck: 'server' | 'generator' | '-';
  pass: boolean;
  /** 2 when this is the retry of a failed step. */
  attempt?: number;
}

export interface SteppedResult {
  steps: StepResult[];
  /** Highest passing step's achieved deliveries/s (0 when none passed). */
  kneeDps: number;
  /** Whether stepping stopped on a failure (else the knee is at least the last step). */
  kneeFound: boolean;
  kneeGeneratorBound: boolean;
  connectErrors: number;
  integrity: Integrity;
}

/** A room layout: who is where and who sends. */
export interface Layout {
  members: MemberSpec[];
  senders: SenderSpec[];
  roomSize: Map<string, number>;
}

/** `rooms` rooms of `size` members, half browsers and half consoles, `sendersPerRoom` senders in each. */
export function layout(prefix: string, rooms: number, size: number, sendersPerRoom: number): Layout {
  const members: MemberSpec[] = [];
  const senders: SenderSpec[] = [];
  const roomSize = new Map<string, number>();
  for (let r = 0; r < rooms; r++) {
    const room = `${prefix}-${r}`;
    roomSize.set(room, size);
    for (let k = 0; k < size; k++) {
      const id = members.length;
      // Alternate doors; in rooms of an even size shift by room so senders are not all one door.
      const door = (k + (size % 2 === 0 && sendersPerRoom === 1 ? r : 0)) % 2 === 0 ? 'browser' : 'console';
      const spec: MemberSpec = { id, door, room, user: `u${id}` };
      if (k < sendersPerRoom) {
        spec.sender = senders.length;
        senders.push({ sender: spec.sender, room });
      }
      members.push(spec);
    }
  }
  return { members, senders, roomSize };
}

function expectedDeliveries(l: Layout, scheduled: Map<number, number>, excluded = 0): number {
  let total = 0;
  for (const s of l.senders)
    total += (scheduled.get(s.sender) ?? 0) * ((l.roomSize.get(s.room) ?? 0) - excluded);
  return total;
}

/** Run one step at `messagesPerSecond` (all senders together) and measure it. */
async function measureStep(
  gen: LoadGen,
  server: ServerHandle,
  l: Layout,
  messagesPerSecond: number,
  timing: Timing,
  excluded = 0,
): Promise<StepResult> {
  const startNs = nowNs() + 50e6;
  const windowStartNs = startNs + timing.warmupMs * 1e6;
  const endNs = windowStartNs + timing.measureMs * 1e6;
  await gen.all({
    op: 'step',
    startNs,
    windowStartNs,
    endNs,
    ratePerSender: messagesPerSecond / l.senders.length,
  });
  await sleep((windowStartNs - nowNs()) / 1e6);
  const serverCpu = new CpuMeter(server.pid);
  const serverMainCpu = new CpuMeter(`${server.pid}/task/${server.pid}`);
  const genCpu = new CpuMeter('self');
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  void server.report();
  await sleep((endNs - nowNs()) / 1e6);
  const serverShare = serverCpu.read();
  const serverMainShare = serverMainCpu.read();
  const genShare = genCpu.read();
  const machineShare = (machineBusySeconds() - busy0) / ((performance.now() - t0) / 1000);
  const serverRss = rssMiB(server.pid);
  const report = await server.report();
  // Give late deliveries up to 1.5 s to arrive; what has not by then counts as not arrived.
  const deadline = Date.now() + 1500;
  let collected = await gen.collect();
  let expected = expectedDeliveries(l, collected.scheduled, excluded);
  while (collected.inWindow < expected && Date.now() < deadline) {
    await sleep(200);
    collected = await gen.collect();
    expected = expectedDeliveries(l, collected.scheduled, excluded);
  }
  const latency = summarize(collected.hist);
  const arrivedPct = expected > 0 ? (100 * collected.inWindow) / expected : 100;
  const seconds = timing.measureMs / 1000;
  const genSaturated = collected.usage.some((u) => u.cpu >= 0.9 || u.elu >= 0.95);
  const pass = latency.p99 <= 250 && arrivedPct >= 99.9;
  return {
    offeredDps: Math.round(expected / seconds),
    achievedDps: Math.round(collected.inWindow / seconds),
    messagesPerSecond: Math.round(messagesPerSecond),
    arrivedPct: round(arrivedPct, 3),
    latency,
    serverCpu: round(serverShare, 2),
    serverMainCpu: round(serverMainShare, 2),
    serverRssMiB: Math.round(serverRss),
    serverEldP99Ms: report?.eld ? round(report.eld.p99, 2) : undefined,
    serverGc: report ? { msPerSecond: round(report.gc.ms / seconds, 1), major: report.gc.major } : undefined,
    genCpu: round(genShare, 2),
    genWorkerCpu: collected.usage.map((u) => round(u.cpu, 2)),
    genWorkerElu: collected.usage.map((u) => round(u.elu, 2)),
    genSaturated,
    otherCpu: round(Math.max(0, machineShare - serverShare - genShare), 2),
    bottleneck: genSaturated ? 'generator' : serverShare >= 0.9 ? 'server' : '-',
    pass,
  };
}

async function finish(gen: LoadGen): Promise<Integrity> {
  await gen.drain(Number.POSITIVE_INFINITY, 20_000, 1000);
  const v = await gen.verify();
  await gen.close();
  return { sent: v.sent, members: v.members, lost: v.lost, duplicated: v.duplicated, reordered: v.reordered };
}

/** Step the offered rate (deliveries/s) up until p99 passes 250 ms or under 99.9 % arrive. */
export async function stepped(
  gen: LoadGen,
  server: ServerHandle,
  l: Layout,
  stepsDps: number[],
  timing: Timing,
  log: (line: string) => void,
): Promise<SteppedResult> {
  const connected = await gen.connect(server.target, l.members, l.senders, 32);
  if (connected.errors > 0) log(`  ${connected.errors} connections failed: ${connected.firstError}`);
  const fanout = l.members.length / l.roomSize.size;
  const steps: StepResult[] = [];
  for (const dps of stepsDps) {
    // A failing step is run once more (after a pause to drain): on a shared machine one stall of
    // another process can fail a step that the server passes. Both attempts are kept.
    let step: StepResult | undefined;
    for (let attempt = 0; attempt < 2 && !step?.pass; attempt++) {
      if (attempt > 0) await gen.drain(Number.POSITIVE_INFINITY, 10_000, 1000);
      step = await measureStep(gen, server, l, dps / fanout, timing);
      step.attempt = attempt + 1;
      steps.push(step);
      log(
        `  offered ${step.offeredDps}/s achieved ${step.achievedDps}/s p50 ${step.latency.p50} p99 ${step.latency.p99} ms` +
          ` arrived ${step.arrivedPct}% server cpu ${step.serverCpu} gen cpu ${step.genWorkerCpu.join('+')}` +
          ` other cpu ${step.otherCpu}${step.pass ? '' : ' FAIL'}`,
      );
    }
    if (!step?.pass) break;
  }
  const passing = steps.filter((s) => s.pass);
  const best = passing.reduce<StepResult | undefined>(
    (a, s) => (!a || s.achievedDps > a.achievedDps ? s : a),
    undefined,
  );
  const integrity = await finish(gen);
  return {
    steps,
    kneeDps: best?.achievedDps ?? 0,
    kneeFound: !steps.at(-1)?.pass,
    kneeGeneratorBound: steps.some((s) => s.genSaturated),
    connectErrors: connected.errors,
    integrity,
  };
}

export interface FloorResult {
  latency: Latency;
  serverCpu: number;
  integrity: Integrity;
}

/** A room of 2, one sender at `rate` msg/s. */
export async function floor(
  gen: LoadGen,
  server: ServerHandle,
  rate: number,
  timing: Timing,
): Promise<FloorResult> {
  const l: Layout = {
    members: [
      { id: 0, door: 'console', room: 'floor', user: 'sender', sender: 0 },
      { id: 1, door: 'browser', room: 'floor', user: 'reader' },
    ],
    senders: [{ sender: 0, room: 'floor' }],
    roomSize: new Map([['floor', 2]]),
  };
  await gen.connect(server.target, l.members, l.senders, 2);
  const step = await measureStep(gen, server, l, rate, timing);
  return { latency: step.latency, serverCpu: step.serverCpu, integrity: await finish(gen) };
}

export interface LowLoadResult {
  step: StepResult;
  /** Server CPU per message, in microseconds of one core. */
  cpuPerMessageUs: number;
  integrity: Integrity;
}

/** Many small rooms at a steady, modest rate: what durability costs when the server is not busy. */
export async function lowload(
  gen: LoadGen,
  server: ServerHandle,
  rooms: number,
  messagesPerSecond: number,
  timing: Timing,
): Promise<LowLoadResult> {
  const l = layout('low', rooms, 4, 1);
  await gen.connect(server.target, l.members, l.senders, 32);
  const step = await measureStep(gen, server, l, messagesPerSecond, timing);
  return {
    step,
    cpuPerMessageUs: round((step.serverCpu * 1e6) / Math.max(1, step.messagesPerSecond), 1),
    integrity: await finish(gen),
  };
}

export interface SlowResult {
  messagesPerSecond: number;
  without: StepResult;
  withLaggard: StepResult;
  laggardDropped: boolean;
  laggardCloseCode: number | undefined;
  serverDropsLogged: number;
  /** Seconds from the laggard's last read to the server logging its drop. */
  dropAfterSeconds: number | undefined;
  rssPeakWithoutMiB: number;
  rssPeakWithMiB: number;
  integrity: Integrity;
}

/** room100 at `messagesPerSecond`, first as is, then with one browser that stops reading. */
export async function slow(
  gen: LoadGen,
  server: ServerHandle,
  messagesPerSecond: number,
  timing: Timing,
  laggardMs: number,
): Promise<SlowResult> {
  const l = layout('slow', 1, 100, 10);
  const laggard = l.members.find((m) => m.door === 'browser' && m.sender === undefined) as MemberSpec;
  await gen.connect(server.target, l.members, l.senders, 32);
  const rss = new RssSampler(server.pid);
  const without = await measureStep(gen, server, l, messagesPerSecond, timing);
  const rssPeakWithoutMiB = rss.peak;
  rss.reset();
  await gen.call(gen.workerOf(laggard.id), { op: 'pause', member: laggard.id });
  const pausedAt = Date.now();
  const withLaggard = await measureStep(
    gen,
    server,
    l,
    messagesPerSecond,
    {
      warmupMs: timing.warmupMs,
      measureMs: laggardMs,
    },
    1,
  );
  const rssPeakWithMiB = rss.peak;
  rss.stop();
  const resumed = await gen.call<{ closedCode: number | undefined }>(gen.workerOf(laggard.id), {
    op: 'resume',
    member: laggard.id,
    waitMs: 3000,
  });
  const dropAt = server.firstDropAt;
  return {
    messagesPerSecond: Math.round(messagesPerSecond),
    without,
    withLaggard,
    laggardDropped: resumed.closedCode !== undefined || server.drops > 0,
    laggardCloseCode: resumed.closedCode,
    serverDropsLogged: server.drops,
    dropAfterSeconds: dropAt ? round((dropAt - pausedAt) / 1000, 1) : undefined,
    rssPeakWithoutMiB: Math.round(rssPeakWithoutMiB),
    rssPeakWithMiB: Math.round(rssPeakWithMiB),
    integrity: await finish(gen),
  };
}

export interface IdleStep {
  connections: number;
  errors: number;
  connectsPerSecond: number;
  handshake: Latency;
  rssMiB: number;
  heapUsedMiB: number;
  /** RSS growth per connection since before the first, after GC, in KiB. */
  rssPerConnKiB: number;
  heapPerConnKiB: number;
  /**
   * Where the workload ran in rounds: each round's connects/s at this step, in round order, null
   * where that round failed at or before it.
   */
  rounds?: (number | null)[];
  /** Rounds that failed at or before this step (left out of the median). */
  failedRounds?: number;
}

const median = (values: readonly number[]): number | undefined => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};

/**
 * Idle steps run in several rounds, one step list per round: each step as its median round by
 * connects/s (the lower middle one of an even count) among the rounds that reached it without a
 * failure, with every round's figure kept. A step no round reached cleanly is reported from those
 * that reached it.
 */
export function medianRound(rounds: readonly IdleStep[][]): IdleStep[] {
  const steps = Math.max(0, ...rounds.map((r) => r.length));
  const out: IdleStep[] = [];
  for (let i = 0; i < steps; i++) {
    const reached = rounds.map((r) => r[i]);
    const clean = reached.filter((s): s is IdleStep => s !== undefined && s.errors === 0);
    const pool = clean.length > 0 ? clean : reached.filter((s): s is IdleStep => s !== undefined);
    const rate = median(pool.map((s) => s.connectsPerSecond));
    const chosen = pool.find((s) => s.connectsPerSecond === rate) as IdleStep;
    out.push({
      ...chosen,
      rounds: reached.map((s) => (s && s.errors === 0 ? s.connectsPerSecond : null)),
      failedRounds: reached.length - clean.length,
    });
  }
  return out;
}

/** The median over rounds of ours' connects/s over the baseline's in the same round. */
export function medianRatio(ours: IdleStep, theirs: IdleStep): number | undefined {
  const ratios: number[] = [];
  (ours.rounds ?? []).forEach((rate, i) => {
    const other = theirs.rounds?.[i];
    if (rate !== null && other) ratios.push(rate / other);
  });
  return median(ratios);
}

/** Open idle connections of one door in cumulative steps; memory per connection after GC at each. */
export async function idle(
  gen: LoadGen,
  server: ServerHandle,
  door: 'console' | 'browser',
  steps: number[],
  log: (line: string) => void,
): Promise<IdleStep[]> {
  const base = await server.report();
  const results: IdleStep[] = [];
  let open = 0;
  for (const target of steps) {
    const members: MemberSpec[] = [];
    for (let id = open; id < target; id++)
      members.push({ id, door, room: `idle-${Math.floor(id / 10)}`, user: `i${id}` });
    const c = await gen.connect(server.target, members, [], 64);
    open = target;
    await sleep(1000);
    const r = await server.report();
    const step: IdleStep = {
      connections: target - c.errors,
      errors: c.errors,
      connectsPerSecond: Math.round(members.length / (c.elapsedMs / 1000)),
      handshake: summarizeValues(c.handshakeUs),
      rssMiB: round(r?.rssMiB ?? 0),
      heapUsedMiB: round(r?.heapUsedMiB ?? 0),
      rssPerConnKiB: round((((r?.rssMiB ?? 0) - (base?.rssMiB ?? 0)) * 1024) / target, 2),
      heapPerConnKiB: round((((r?.heapUsedMiB ?? 0) - (base?.heapUsedMiB ?? 0)) * 1024) / target, 2),
    };
    results.push(step);
    log(
      `  ${door} ${step.connections} open (${step.errors} failed): ${step.connectsPerSecond} connects/s, handshake p99 ` +
        `${step.handshake.p99} ms, ${step.rssPerConnKiB} KiB RSS/conn, ${step.heapPerConnKiB} KiB heap/conn`,
    );
    if (c.errors > 0) {
      log(`  first failure: ${c.firstError}`);
      break;
    }
  }
  await gen.close();
  return results;
}

export interface JoinResult {
  prefillMessages: number;
  prefillSeconds: number;
  joins: number;
  incomplete: number;
  toBackscroll: Latency;
  open: Latency;
  /** Server CPU per join, µs. */
  cpuUs: number;
  /** The same joins while a console stays in the room, so it is open on the server for each. */
  openRoom: { incomplete: number; toBackscroll: Latency; cpuUs: number };
}

/** Wait (up to 10 s) until the process uses under 5 % of a core over 200 ms. */
async function untilQuiet(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const before = cpuSeconds(pid);
    await sleep(200);
    if (cpuSeconds(pid) - before < 0.01) return;
  }
}

/**
 * Fill a room with `messages`, then time `joins` browsers from WebSocket open to the full backscroll:
 * into the room while nobody else is in it, then while a console stays in it.
 */
export async function join(
  gen: LoadGen,
  server: ServerHandle,
  messages: number,
  joins: number,
  backscroll: number,
): Promise<JoinResult> {
  const prefillMs = await gen.call<number>(0, {
    op: 'prefill',
    target: server.target,
    room: 'join',
    count: messages,
    window: 64,
  });
  // The prefill's commits leave the search indexer work for a second or so: let it finish, and warm
  // the join path up, before CPU per join is counted.
  await untilQuiet(server.pid);
  const warmUp = { op: 'joins', target: server.target, room: 'join', backscroll } as const;
  await gen.call(0, { ...warmUp, count: 20, keepOpen: false });
  const series = async (keepOpen: boolean) => {
    const cpu = cpuSeconds(server.pid);
    const r = await gen.call<{ toBackscrollUs: number[]; openUs: number[]; incomplete: number }>(0, {
      op: 'joins',
      target: server.target,
      room: 'join',
      count: joins,
      backscroll,
      keepOpen,
    });
    return { ...r, cpuUs: Math.round(((cpuSeconds(server.pid) - cpu) / joins) * 1e6) };
  };
  const empty = await series(false);
  const open = await series(true);
  await gen.close();
  return {
    prefillMessages: messages,
    prefillSeconds: round(prefillMs / 1000, 2),
    joins,
    incomplete: empty.incomplete,
    toBackscroll: summarizeValues(empty.toBackscrollUs),
    open: summarizeValues(empty.openUs),
    cpuUs: empty.cpuUs,
    openRoom: {
      incomplete: open.incomplete,
      toBackscroll: summarizeValues(open.toBackscrollUs),
      cpuUs: open.cpuUs,
    },
  };
}
