// Unit tests of the group commit (src/hub/transcript.ts) with a store the test answers and turns of I/O it hands out.
import { describe, expect, it } from 'vitest';
import {
  type Appended,
  type Appends,
  type Committed,
  GroupCommit,
  type NewMessage,
  type StoredMessage,
} from '../src/hub/transcript.ts';
import { type Deferred, deferred, Turns } from './helpers/events.ts';

/** A store whose appends are answered by the test, in any order it likes. */
class ManualStore implements Appends {
  readonly appendsInFlight: number;
  /** Each append handed over; the test answers it with the seqs it stores the messages at. */
  readonly calls: { messages: readonly NewMessage[]; answer: Deferred<number[]> }[] = [];
  constructor(inFlight: number) {
    this.appendsInFlight = inFlight;
  }
  append(messages: readonly NewMessage[]): Promise<Appended[]> {
    const answer = deferred<number[]>();
    this.calls.push({ messages, answer });
    return answer.promise.then((seqs) => seqs.map((seq) => ({ seq })));
  }

  /** The texts of each batch handed over, in call order. */
  get batches(): string[][] {
    return this.calls.map((c) => c.messages.map((x) => x.text));
  }
}

const m = (text: string): NewMessage => ({
  id: text,
  room: 'ops',
  sender: 'ann',
  text,
  ts: 1,
  via: 'console',
});

/** The message a submit was committed as. */
const stored = async (committed: Promise<Committed>): Promise<StoredMessage> => {
  const c = await committed;
  return 'stored' in c ? c.stored : c.duplicate;
};

describe('group commit', () => {
  it('messages submitted while a batch waits for its turn of I/O go into that batch', async () => {
    const store = new ManualStore(1);
    const turns = new Turns();
    const commit = new GroupCommit(store, () => {}, { yieldToIo: turns.yieldToIo });
    void commit.submit(m('a'));
    void commit.submit(m('b'));
    expect(store.calls).toEqual([]);
    await turns.give();
    expect(store.batches).toEqual([['a', 'b']]);
  });

  it('a store that answers at once still waits for a turn of I/O before each batch', async () => {
    const turns = new Turns();
    let seq = 0;
    const batches: string[][] = [];
    const store: Appends = {
      append: async (messages) => {
        batches.push(messages.map((x) => x.text));
        return messages.map(() => ({ seq: ++seq }));
      },
    };
    const commit = new GroupCommit(store, () => {}, { yieldToIo: turns.yieldToIo });
    const a = commit.submit(m('a'));
    await turns.give();
    const b = commit.submit(m('b'));
    expect((await stored(a)).seq).toBe(1);
    expect(batches).toEqual([['a']]);
    await turns.give();
    expect((await stored(b)).seq).toBe(2);
    expect(batches).toEqual([['a'], ['b']]);
  });
});

describe('group commit with a store that takes two appends at once', () => {
  it('a second batch goes while one is in flight only once enough waits: a few wait and share the next commit', async () => {
    const turns = new Turns();
    const store = new ManualStore(2);
    const commit = new GroupCommit(store, () => {}, { yieldToIo: turns.yieldToIo, pipelineAt: 4 });
    void commit.submit(m('a'));
    await turns.give();
    for (const text of ['b', 'c', 'd']) void commit.submit(m(text));
    await turns.giveAll();
    expect(store.batches).toEqual([['a']]); // three wait for the commit in flight
    void commit.submit(m('e'));
    await turns.give();
    expect(store.batches).toEqual([['a'], ['b', 'c', 'd', 'e']]); // four are worth a commit of their own
    store.calls[0]?.answer.resolve([1]);
    store.calls[1]?.answer.resolve([2, 3, 4, 5]);
    await commit.flushed();
  });

  it('the next batch is handed to the store while the previous one is still committing', async () => {
    const turns = new Turns();
    const store = new ManualStore(2);
    const commit = new GroupCommit(store, () => {}, { yieldToIo: turns.yieldToIo, pipelineAt: 1 });
    void commit.submit(m('a'));
    await turns.give();
    void commit.submit(m('b'));
    await turns.give();
    expect(store.batches).toEqual([['a'], ['b']]);

    const serialTurns = new Turns();
    const serial = new ManualStore(1);
    const one = new GroupCommit(serial, () => {}, { yieldToIo: serialTurns.yieldToIo });
    void one.submit(m('a'));
    await serialTurns.give();
    void one.submit(m('b'));
    await serialTurns.giveAll();
    expect(serial.batches).toEqual([['a']]); // waits for the first answer
    serial.calls[0]?.answer.resolve([1]);
    await serialTurns.give();
    expect(serial.batches).toEqual([['a'], ['b']]);
  });

  it('batches answered out of order are still reported, and acknowledged, in the order they were made', async () => {
    const turns = new Turns();
    const store = new ManualStore(2);
    const reported: string[] = [];
    const commit = new GroupCommit(
      store,
      (batch) => reported.push(...batch.map((x) => `${x.text}:${x.seq}`)),
      { yieldToIo: turns.yieldToIo, pipelineAt: 1 },
    );
    const acks: string[] = [];
    const a = commit.submit(m('a')).then((s) => acks.push('stored' in s ? s.stored.text : ''));
    await turns.give();
    const b = commit.submit(m('b')).then((s) => acks.push('stored' in s ? s.stored.text : ''));
    await turns.give();
    const second = store.calls[1]?.answer;
    second?.resolve([2]);
    await second?.promise; // the group commit has taken the answer
    expect(reported).toEqual([]); // 'b' waits for 'a'
    store.calls[0]?.answer.resolve([1]);
    await Promise.all([a, b]);
    expect(reported).toEqual(['a:1', 'b:2']);
    expect(acks).toEqual(['a', 'b']);
  });

  it('a failed batch fails only its own messages; the batch after it is reported and flushed() waits for both', async () => {
    const turns = new Turns();
    const store = new ManualStore(2);
    const reported: string[] = [];
    const commit = new GroupCommit(store, (batch) => reported.push(...batch.map((x) => x.text)), {
      yieldToIo: turns.yieldToIo,
      pipelineAt: 1,
    });
    const a = commit.submit(m('a')).then(
      () => 'stored',
      (e: Error) => e.message,
    );
    await turns.give();
    const b = commit.submit(m('b'));
    await turns.give();
    let flushed = false;
    void commit.flushed().then(() => {
      flushed = true;
    });
    store.calls[0]?.answer.reject(new Error('disk full'));
    expect(await a).toBe('disk full');
    expect(flushed).toBe(false);
    store.calls[1]?.answer.resolve([7]);
    expect((await stored(b)).seq).toBe(7);
    await commit.flushed();
    expect(reported).toEqual(['b']);
    expect(flushed).toBe(true);
  });

  it('a report that throws is logged; its messages and the batches after it are still acknowledged', async () => {
    const turns = new Turns();
    const store = new ManualStore(2);
    const errors: unknown[] = [];
    const reported: string[] = [];
    const commit = new GroupCommit(
      store,
      (batch) => {
        if (batch.some((x) => x.text === 'a')) throw new Error('broadcast bug');
        reported.push(...batch.map((x) => x.text));
      },
      { onReportError: (e) => errors.push(e), yieldToIo: turns.yieldToIo, pipelineAt: 1 },
    );
    const a = commit.submit(m('a'));
    await turns.give();
    const b = commit.submit(m('b'));
    await turns.give();
    store.calls[1]?.answer.resolve([2]);
    store.calls[0]?.answer.resolve([1]);
    expect((await stored(a)).seq).toBe(1);
    expect((await stored(b)).seq).toBe(2);
    expect(reported).toEqual(['b']);
    expect(errors).toHaveLength(1);
    await commit.flushed();
  });

  it('a store that throws instead of rejecting fails that batch only', async () => {
    const turns = new Turns();
    let calls = 0;
    const store = new ManualStore(1);
    const append = store.append.bind(store);
    store.append = (messages) => {
      calls += 1;
      if (calls === 1) throw new Error('thrown, not rejected');
      return append(messages);
    };
    const commit = new GroupCommit(store, () => {}, { yieldToIo: turns.yieldToIo });
    const a = expect(commit.submit(m('a'))).rejects.toThrow('thrown, not rejected');
    await turns.give();
    await a;
    const b = commit.submit(m('b'));
    await turns.give();
    store.calls[0]?.answer.resolve([5]);
    expect((await stored(b)).seq).toBe(5);
    await commit.flushed();
  });
});
