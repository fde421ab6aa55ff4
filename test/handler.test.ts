// A connection's messages waiting for commit are bounded: past MAX_INFLIGHT its door stops reading it,
// and reading resumes once half of them are stored, so a fast sender is slowed to the store's pace.
import { describe, expect, it } from 'vitest';
import type { Hub } from '../src/hub/hub.ts';
import type { Peer } from '../src/hub/peer.ts';
import { ConnectionHandler, MAX_INFLIGHT, MAX_READS_WAITING } from '../src/protocol/handler.ts';

/** A Hub whose commits finish only when the test says so. */
function stalledHub(): { hub: Hub; commits: (() => void)[] } {
  const commits: (() => void)[] = [];
  const hub = {
    message: () => new Promise<void>((resolve) => commits.push(resolve)),
  } as unknown as Hub;
  return { hub, commits };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('messages awaiting commit on one connection', () => {
  it('stop the reading at 64 and let it go on once 32 are stored', async () => {
    expect(MAX_INFLIGHT).toBe(64);
    const { hub, commits } = stalledHub();
    const reading: string[] = [];
    const peer = { optedIn: false, user: 'flood' } as unknown as Peer;
    const handler = new ConnectionHandler(
      hub,
      peer,
      { hold: (why) => reading.push(`hold ${why}`), release: (why) => reading.push(`release ${why}`) },
      'ops',
    );
    for (let i = 0; i < MAX_INFLIGHT - 1; i++) handler.handle({ type: 'message', text: `m${i}` });
    expect(reading).toEqual([]);
    handler.handle({ type: 'message', text: 'the 64th' });
    expect(reading).toEqual(['hold commit']);
    // 31 stored: still 33 waiting, reading stays stopped.
    for (const commit of commits.splice(0, MAX_INFLIGHT / 2 - 1)) commit();
    await settle();
    expect(reading).toEqual(['hold commit']);
    commits.shift()?.();
    await settle();
    expect(reading).toEqual(['hold commit', 'release commit']);
  });
});

describe('history pages waiting on one connection', () => {
  it('answer the 17th with busy at once, and take another once one is answered', async () => {
    expect(MAX_READS_WAITING).toBe(16);
    const answers: (() => void)[] = [];
    const refused: string[] = [];
    const hub = {
      history: () => new Promise<void>((resolve) => answers.push(resolve)),
      historyBusy: (_peer: Peer, waiting: number, ref?: string) => refused.push(`busy ${waiting} ${ref}`),
    } as unknown as Hub;
    const reading: string[] = [];
    const peer = { optedIn: true, user: 'reader' } as unknown as Peer;
    const handler = new ConnectionHandler(
      hub,
      peer,
      { hold: (why) => reading.push(`hold ${why}`), release: (why) => reading.push(`release ${why}`) },
      'ops',
    );
    const page = (ref: string) => ({ type: 'history', room: 'ops', before: 500, limit: 200, ref }) as const;
    for (let i = 0; i < MAX_READS_WAITING; i++) handler.handle(page(`p${i}`));
    expect(answers).toHaveLength(16);
    handler.handle(page('p16'));
    expect(refused).toEqual(['busy 16 p16']);
    expect(answers).toHaveLength(16);
    answers.shift()?.();
    await settle();
    handler.handle(page('p17'));
    expect(refused).toEqual(['busy 16 p16']);
    expect(answers).toHaveLength(16);
    expect(reading).toEqual([]);
  });
});
