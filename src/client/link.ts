// The byte stream to the console door, as NDJSON lines: a TCP connection, or `ssh -W` through a host.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** What a link tells its owner: each line that arrives, and that it closed (once, with why). */
export interface LinkHandlers {
  line(text: string): void;
  closed(reason: string): void;
}

/** One connection to the console door. */
export interface Link {
  /** Write one line (a newline is added). */
  write(line: string): void;
  /** Close it; `closed` follows. */
  close(): void;
}

/** Opens a fresh link each time it is called (once per connection attempt). */
export type Opener = (handlers: LinkHandlers) => Link;

/** Where the console door is: a TCP address, or a host to tunnel through with ssh. */
export type Destination =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'ssh'; host: string; port: number; command: readonly string[] };

// History pages can carry 200 messages of 20,000 characters: a line is allowed to be big, not endless.
const MAX_LINE_CHARS = 32 * 1024 * 1024;

/** Split a readable into lines, calling `line` for each non-blank one. */
function readLines(input: Readable, line: (text: string) => void, tooLong: () => void): void {
  let buffer = '';
  input.setEncoding('utf8');
  input.on('data', (chunk: string) => {
    buffer += chunk;
    let nl = buffer.indexOf('\n');
    while (nl !== -1) {
      const text = buffer.slice(0, nl).replace(/\r$/u, '');
      buffer = buffer.slice(nl + 1);
      if (text.trim()) line(text);
      nl = buffer.indexOf('\n');
    }
    if (buffer.length > MAX_LINE_CHARS) tooLong();
  });
}

/** Wrap a pair of streams as a link whose `closed` is called once. */
function streamLink(
  input: Readable,
  output: Writable,
  handlers: LinkHandlers,
  stop: () => void,
): { link: Link; close: (reason: string) => void } {
  let done = false;
  const close = (reason: string): void => {
    if (done) return;
    done = true;
    stop();
    handlers.closed(reason);
  };
  readLines(
    input,
    (text) => !done && handlers.line(text),
    () => close('a line from the server was too long'),
  );
  output.on('error', () => {});
  const link: Link = {
    write: (line) => {
      if (!done) output.write(`${line}\n`);
    },
    close: () => close('closed'),
  };
  return { link, close };
}

/** A link over TCP. */
function tcpLink(host: string, port: number, handlers: LinkHandlers): Link {
  const socket = connect({ host, port });
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 30_000);
  let why = 'connection closed';
  const { link, close } = streamLink(socket, socket, handlers, () => socket.destroy());
  socket.on('error', (error) => {
    why = error.message;
  });
  socket.on('close', () => close(why));
  return link;
}

/** A link through `ssh -W localhost:PORT HOST`: its stdin and stdout are the stream. */
function sshLink(command: readonly string[], host: string, port: number, handlers: LinkHandlers): Link {
  const [program = 'ssh', ...options] = command;
  const child = spawn(program, [...options, '-W', `localhost:${port}`, host], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const { link, close } = streamLink(child.stdout, child.stdin, handlers, () => {
    if (child.exitCode === null) child.kill();
  });
  const why = (fallback: string): string => stderr.trim().split('\n').pop()?.trim() || fallback;
  child.on('error', (error) => close(`${program}: ${error.message}`));
  child.on('close', (code) => close(why(`${program} exited with ${code}`)));
  return link;
}

/** An opener for a destination. */
export function opener(to: Destination): Opener {
  return (handlers) =>
    to.kind === 'tcp' ? tcpLink(to.host, to.port, handlers) : sshLink(to.command, to.host, to.port, handlers);
}

/** How a destination is named in messages. */
export function describe(to: Destination): string {
  return to.kind === 'tcp' ? `${to.host}:${to.port}` : `${to.host} (ssh -W localhost:${to.port})`;
}
