// A frame encoded once for every recipient (src/hub/peer.ts): its WebSocket framing, read back by ws.

import type { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { Encoded, textFrame } from '../src/hub/peer.ts';

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
  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 200_000])(
    'a client reads a %i-byte payload back exactly',
    (size) => {
      const text = 'x'.repeat(size);
      expect(readAsClient(textFrame(new TextEncoder().encode(text)))).toEqual([text]);
    },
  );

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
    const twice = new Uint8Array(frame.wsText.length * 2);
    twice.set(frame.wsText);
    twice.set(frame.wsText, frame.wsText.length);
    expect(readAsClient(twice)).toEqual([frame.json, frame.json]);
  });

  it('is built once however many recipients ask for it', () => {
    const frame = new Encoded({ type: 'presence', room: 'ops', user: 'ann', status: 'away' });
    expect(frame.wsText).toBe(frame.wsText);
  });
});
