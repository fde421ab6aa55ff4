// A frame encoded once for every recipient (src/hub/peer.ts) and its wire forms, made once by each door:
// the WebSocket framing read back by ws, and the NDJSON lines.

import type { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { ndjsonLines } from '../src/doors/ndjson.ts';
import { websocketFrames } from '../src/doors/websocket-frames.ts';
import { Encoded, EncodedRun } from '../src/hub/peer.ts';

/** ws's frame parser: exported by ws at runtime, though its type declarations leave it out. */
const { Receiver } = ws as unknown as {
  Receiver: new (options: {
    isServer: boolean;
    maxPayload: number;
  }) => EventEmitter & {
    write(chunk: Buffer): void;
  };
};

/** What a WebSocket client makes of `bytes`: each text message, decoded. */
function readAsClient(bytes: Uint8Array): string[] {
  const receiver = new Receiver({ isServer: false, maxPayload: 0 });
  const messages: string[] = [];
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(false);
    messages.push(data.toString('utf8'));
  });
  receiver.on('error', (error: Error) => {
    throw error;
  });
  receiver.write(Buffer.from(bytes));
  return messages;
}

describe('pre-framed WebSocket text frames', () => {
  /** A frame whose JSON text is `text`. */
  const framed = (text: string) => new Encoded({ json: text, seq: undefined });

  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 200_000])(
    'a client reads a %i-byte payload back exactly',
    (size) => {
      const text = 'x'.repeat(size);
      expect(readAsClient(websocketFrames(framed(text)))).toEqual([text]);
    },
  );

  it('sizes each frame by its UTF-8 bytes, not its characters, on both sides of each header size', () => {
    // 63 characters that are 126 bytes; 32,767 that are 65,534 and 32,768 that are 65,536.
    const texts = [
      'é'.repeat(62),
      'é'.repeat(63),
      'é'.repeat(32_767),
      'é'.repeat(32_768),
      '🚀'.repeat(16_384),
    ];
    for (const text of texts) expect(readAsClient(websocketFrames(framed(text)))).toEqual([text]);
    // And a run of all of them, large and small mixed, reads as that many messages.
    const run = new EncodedRun(['a', ...texts, '', 'z'].map(framed));
    expect(readAsClient(websocketFrames(run))).toEqual(['a', ...texts, '', 'z']);
  });

  it('frames the JSON of a message, emoji and all, and two frames in a row read as two messages', () => {
    const frame = new Encoded({
      type: 'message',
      id: 'f'.repeat(32),
      ts: 1,
      sender: 'zoë',
      room: 'ops',
      text: '🚀'.repeat(20_000),
      seq: 7,
    });
    expect(readAsClient(websocketFrames(new EncodedRun([frame, frame])))).toEqual([frame.json, frame.json]);
  });

  it('is built once however many recipients ask for it, for a frame and for a run', () => {
    const frame = new Encoded({ type: 'presence', room: 'ops', user: 'ann', status: 'away' });
    expect(websocketFrames(frame)).toBe(websocketFrames(frame));
    const run = new EncodedRun([frame, frame]);
    expect(websocketFrames(run)).toBe(websocketFrames(run));
  });
});

describe('NDJSON lines', () => {
  it('are the JSON of each frame followed by a newline, made once per frame or run', () => {
    const a = new Encoded({ type: 'presence', room: 'ops', user: 'ann', status: 'away' });
    const b = new Encoded({ type: 'ping' });
    const run = new EncodedRun([a, b]);
    expect(new TextDecoder().decode(ndjsonLines(run))).toBe(`${a.json}\n${b.json}\n`);
    expect(ndjsonLines(run)).toBe(ndjsonLines(run));
    expect(ndjsonLines(a)).toBe(ndjsonLines(a));
    // Each door keeps its own form: asking for one does not hand out the other.
    expect(new TextDecoder().decode(ndjsonLines(a))).toBe(`${a.json}\n`);
    expect(readAsClient(websocketFrames(a))).toEqual([a.json]);
  });

  it('are UTF-8, emoji and all', () => {
    const a = new Encoded({
      type: 'message',
      id: 'f'.repeat(32),
      ts: 1,
      sender: 'zoë',
      room: 'ops',
      text: '🚀é',
      seq: 1,
    });
    expect(new TextDecoder().decode(ndjsonLines(new EncodedRun([a, a])))).toBe(`${a.json}\n${a.json}\n`);
  });
});
