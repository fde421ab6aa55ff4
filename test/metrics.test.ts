// Prometheus metrics on their own port: scraped and parsed while traffic flows, never served on the
// browser door, and every metric the Grafana dashboard in docs/ charts is one the server exports.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserClient, consoleClient, request } from './helpers/clients.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';

/** One metric family of a scrape: its type, and each sample by name and labels. */
interface Family {
  type: string;
  samples: Map<string, number>;
}

/** Parse Prometheus text exposition: `# TYPE` lines and samples (`name{labels} value`). */
function parse(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const familyOf = (sample: string): Family | undefined => {
    if (families.has(sample)) return families.get(sample);
    const base = sample.replace(/_(bucket|sum|count)$/u, '');
    return families.get(base);
  };
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/u.exec(line);
    if (type) {
      families.set(type[1] as string, { type: type[2] as string, samples: new Map() });
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/u.exec(line);
    expect(sample, `not a sample line: ${line}`).not.toBeNull();
    const [, name = '', labels = '', value = ''] = sample as RegExpExecArray;
    const family = familyOf(name);
    expect(family, `sample without a TYPE: ${line}`).toBeDefined();
    family?.samples.set(`${name}${labels}`, Number(value));
  }
  return families;
}

async function scrape(url: string): Promise<Map<string, Family>> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/u);
  return parse(await response.text());
}

const value = (families: Map<string, Family>, family: string, sample: string): number => {
  const found = families.get(family)?.samples.get(sample);
  if (found === undefined) throw new Error(`no sample ${sample} in ${family}`);
  return found;
};

describe('metrics', () => {
  let cleanup: () => Promise<void>;
  let server: TestServer;
  let metricsUrl: string;

  beforeAll(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    server = await startTestServer(join(temp.dir, 'room.db'), ['--metrics-port', '0']);
    metricsUrl = server.metricsUrl ?? '';
  });

  afterAll(async () => {
    await server?.stop();
    await cleanup?.();
  });

  it('are served on a loopback port of their own, and not on the browser door', async () => {
    expect(new URL(metricsUrl).hostname).toBe('127.0.0.1');
    expect(new URL(metricsUrl).port).not.toBe(new URL(server.url).port);
    expect((await fetch(new URL('/metrics', server.url))).status).toBe(404);
    expect((await fetch(new URL('/other', metricsUrl))).status).toBe(404);
  });

  it('move as traffic flows: connections by door, joins, stored messages, batches, deliveries, and why connections ended', async () => {
    const before = await scrape(metricsUrl);
    for (const [name, type] of [
      ['runspec_room_connections', 'gauge'],
      ['runspec_room_connections_opened_total', 'counter'],
      ['runspec_room_disconnects_total', 'counter'],
      ['runspec_room_joins_total', 'counter'],
      ['runspec_room_messages_stored_total', 'counter'],
      ['runspec_room_deliveries_total', 'counter'],
      ['runspec_room_commit_batch_size', 'histogram'],
      ['runspec_room_commit_seconds', 'histogram'],
      ['runspec_room_throttled_frames_total', 'counter'],
      ['runspec_room_sign_ins_total', 'counter'],
      ['runspec_room_writer_restarts_total', 'counter'],
      ['runspec_room_database_errors_total', 'counter'],
      ['runspec_room_event_loop_delay_seconds', 'histogram'],
      ['process_cpu_seconds_total', 'counter'],
    ] as const)
      expect(before.get(name)?.type, name).toBe(type);

    const alice = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'metrics',
      user: 'alice',
      protocol: 2,
    });
    await alice.waitFor((f) => f.type === 'joined');
    const bob = await browserClient(server.url, 'bob', 'metrics');
    await bob.waitFor((f) => f.type === 'joined');
    const during = await scrape(metricsUrl);
    for (const [sample, grew] of [
      ['runspec_room_connections{door="console"}', 1],
      ['runspec_room_connections{door="browser"}', 1],
      ['runspec_room_connections_opened_total{door="console"}', 1],
      ['runspec_room_connections_opened_total{door="browser"}', 1],
    ] as const) {
      const name = sample.slice(0, sample.indexOf('{'));
      expect(value(during, name, sample) - value(before, name, sample), sample).toBe(grew);
    }
    expect(value(during, 'runspec_room_joins_total', 'runspec_room_joins_total')).toBe(
      value(before, 'runspec_room_joins_total', 'runspec_room_joins_total') + 2,
    );

    for (let i = 0; i < 5; i++) await request(alice, { type: 'message', text: `hello ${i}` });
    await bob.waitFor((f) => f.type === 'message' && f.text === 'hello 4');
    const after = await scrape(metricsUrl);
    const grew = (family: string, sample = family): number =>
      value(after, family, sample) - value(before, family, sample);
    expect(grew('runspec_room_messages_stored_total')).toBe(5);
    // Each message reached both members: five echoes to alice, five to bob.
    expect(grew('runspec_room_deliveries_total')).toBe(10);
    expect(grew('runspec_room_commit_batch_size', 'runspec_room_commit_batch_size_sum')).toBe(5);
    expect(grew('runspec_room_commit_seconds', 'runspec_room_commit_seconds_count')).toBeGreaterThan(0);
    expect(value(after, 'runspec_room_commit_seconds', 'runspec_room_commit_seconds_bucket{le="+Inf"}')).toBe(
      value(after, 'runspec_room_commit_seconds', 'runspec_room_commit_seconds_count'),
    );
    expect(
      value(after, 'runspec_room_event_loop_delay_seconds', 'runspec_room_event_loop_delay_seconds_count'),
    ).toBeGreaterThan(0);

    // A console line past 64 KiB ends that connection; the reason is counted.
    const tooLong = { family: 'runspec_room_disconnects_total', sample: '' };
    tooLong.sample = `${tooLong.family}{door="console",reason="too_large"}`;
    alice.raw(`${'x'.repeat(70 * 1024)}\n`);
    await alice.closed;
    bob.close();
    await bob.closed;
    let last = await scrape(metricsUrl);
    for (
      let i = 0;
      i < 100 && value(last, 'runspec_room_connections', 'runspec_room_connections{door="browser"}') > 0;
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      last = await scrape(metricsUrl);
    }
    expect(value(last, tooLong.family, tooLong.sample) - value(before, tooLong.family, tooLong.sample)).toBe(
      1,
    );
    const closed = `${tooLong.family}{door="browser",reason="closed"}`;
    expect(value(last, tooLong.family, closed) - value(before, tooLong.family, closed)).toBe(1);
    expect(value(last, 'runspec_room_connections', 'runspec_room_connections{door="console"}')).toBe(0);
    expect(value(last, 'runspec_room_connections', 'runspec_room_connections{door="browser"}')).toBe(0);
  });

  it('count what the rates refuse: API requests past the rate, and history pages past 16 waiting on a connection', async () => {
    const before = await scrape(metricsUrl);
    const grew = async (family: string): Promise<number> =>
      value(await scrape(metricsUrl), family, family) - value(before, family, family);
    const answers = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const response = await fetch(new URL('/api/rooms/metrics/messages', server.url));
        await response.arrayBuffer();
        return response.status;
      }),
    );
    expect(await grew('runspec_room_api_rate_limited_total')).toBe(answers.filter((s) => s === 429).length);
    expect(answers.filter((s) => s === 429).length).toBeGreaterThan(0);

    const reader = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'metrics-history',
      user: 'reader',
      protocol: 2,
    });
    await reader.waitFor((f) => f.type === 'joined');
    reader.raw(
      Array.from({ length: 17 }, (_, i) => `${JSON.stringify({ type: 'history', ref: `h${i}` })}\n`).join(''),
    );
    await reader.waitFor((f) => f.type === 'error' && f.ref === 'h16');
    expect(await grew('runspec_room_history_refused_total')).toBe(1);
    expect(before.get('runspec_room_reads_held_total')?.type).toBe('counter');
    reader.close();
  });

  it('chart nothing in the Grafana dashboard that the server does not export', async () => {
    const dashboard = JSON.parse(
      readFileSync(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8'),
    ) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    const exported = await scrape(metricsUrl);
    const names = new Set<string>();
    for (const family of exported.values())
      for (const sample of family.samples.keys()) names.add(sample.replace(/\{.*$/u, ''));
    const referenced = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).flatMap((t) => t.expr.match(/\b(?:runspec_room|process)_[a-z_]+/gu) ?? []),
    );
    expect(referenced.length).toBeGreaterThan(10);
    for (const name of referenced) expect(names, name).toContain(name);
    const charted = new Set(referenced.map((n) => n.replace(/_(bucket|sum|count)$/u, '')));
    for (const name of exported.keys())
      if (name.startsWith('runspec_room_') && name !== 'runspec_room_info')
        expect(charted, name).toContain(name);
  });
});

describe('a commit delay (CONSOLE_ROOM_COMMIT_DELAY)', () => {
  let cleanup: () => Promise<void>;
  let server: TestServer;

  beforeAll(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    server = await startTestServer(join(temp.dir, 'room.db'), ['--metrics-port', '0'], {
      CONSOLE_ROOM_COMMIT_DELAY: '100ms',
    });
  });

  afterAll(async () => {
    await server?.stop();
    await cleanup?.();
  });

  it('lets messages sent one after another share a commit, each still echoed once and in order', async () => {
    const metricsUrl = server.metricsUrl ?? '';
    const alice = await consoleClient(server.consolePort, {
      type: 'hello',
      room: 'delay',
      user: 'alice',
      protocol: 2,
    });
    await alice.waitFor((f) => f.type === 'joined');
    // The first message commits at once, and starts the delay.
    await request(alice, { type: 'message', text: 'first' });
    const before = await scrape(metricsUrl);
    // Each message is read by the server before the next is sent (the `who` answer, which needs no
    // commit, follows it). Commits start at least 100 ms apart, and whatever waits when one starts
    // goes in it: over a loop of `elapsed` ms these five take at most 2 + elapsed / 100 commits,
    // however slow the machine. Without the delay each takes one of its own.
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      alice.send({ type: 'message', text: `spaced ${i}` });
      await request(alice, { type: 'who', room: 'delay' });
    }
    const elapsed = performance.now() - started;
    await alice.waitFor((f) => f.type === 'message' && f.text === 'spaced 4');
    const after = await scrape(metricsUrl);
    const grew = (sample: string): number =>
      value(after, 'runspec_room_commit_batch_size', sample) -
      value(before, 'runspec_room_commit_batch_size', sample);
    expect(grew('runspec_room_commit_batch_size_sum')).toBe(5);
    expect(grew('runspec_room_commit_batch_size_count')).toBeLessThanOrEqual(2 + Math.floor(elapsed / 100));
    const echoes = alice.frames.filter((f) => f.type === 'message' && String(f.text).startsWith('spaced'));
    expect(echoes.map((f) => f.text)).toEqual([0, 1, 2, 3, 4].map((i) => `spaced ${i}`));
    alice.close();
  });
});
