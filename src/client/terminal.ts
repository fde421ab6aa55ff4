// `runspec-room console`: the room in a terminal (transcript, presence, a prompt that survives incoming
// messages, slash commands), or, with stdin piped, each line sent as a message; --json prints frames.
import { createInterface, type Interface } from 'node:readline';
import type { CommandContext } from '../cli/commands.ts';
import { UsageError } from '../cli/commands.ts';
import type { HistoryOut, MessageOut, RoomsOut, WhoOut } from '../protocol/frames.ts';
import { HISTORY_MAX } from '../protocol/frames.ts';
import {
  type ClientEvents,
  isRateLimited,
  RequestError,
  RoomClient,
  type StopReason,
  stopMessage,
} from './core.ts';
import { formatMessage, formatWhisper, note, type Painter, painter } from './format.ts';
import { keySigner } from './keys.ts';
import { describe, opener } from './link.ts';
import { COMMON_HELP, type ConsoleSettings, consoleSettings, ENV_HELP } from './options.ts';

/** Exit codes: delivered, failed, usage (main's), refused or revoked credential. */
export const ConsoleExit = { Ok: 0, Failed: 1, Usage: 2, Credential: 3 } as const;

/** Messages sent and not yet echoed, at most, when sending piped lines. */
export const SEND_WINDOW = 64;

/** After stdin ends, how long the sender keeps trying while it cannot reach the server. */
const GIVE_UP_MS = 30_000;

const HELP = `Usage: runspec-room console --room ROOM [--user NAME] [--ssh HOST | --connect HOST:PORT] [--key FILE] [--json]

A console for the room. On a terminal: the transcript and a prompt (/help lists the commands).
With stdin piped: each line is sent as a message, and it exits 0 once every line was echoed (stored).

${COMMON_HELP}
  --json               print every frame received as one JSON object per line (for scripts)

${ENV_HELP}

Exit codes: 0 done, 1 not every line echoed or the server unreachable, 2 usage, 3 key refused or revoked.
`;

const COMMANDS_HELP = [
  '/join ROOM      join a room (or switch to one you are in)',
  '/leave          leave the current room',
  '/rooms          list the rooms',
  '/who            who is in the current room',
  '/msg USER TEXT  whisper to one person',
  '/away, /back    set your status',
  `/history [N]    the last N messages of the current room (default 20, at most ${HISTORY_MAX})`,
  '/quit           leave (Ctrl-D too)',
  'A line that starts with // is sent with one slash.',
];

/** Which way the console runs. */
type Mode = 'interactive' | 'piped' | 'json';

interface Io {
  readonly ctx: CommandContext;
  readonly settings: ConsoleSettings;
}

/** The console command. */
export async function runConsole(ctx: CommandContext): Promise<number> {
  const settings = consoleSettings(ctx.argv, ctx.env);
  if (!settings) {
    ctx.stdout(HELP);
    return ConsoleExit.Ok;
  }
  const key = settings.keyFile
    ? await keySigner(settings.keyFile).catch((error: unknown) => {
        throw new UsageError(`--key: ${error instanceof Error ? error.message : String(error)}`);
      })
    : undefined;
  const mode: Mode = settings.json ? 'json' : process.stdin.isTTY ? 'interactive' : 'piped';
  const io = { ctx, settings };
  const events: ClientEvents = {};
  const client = new RoomClient({
    user: settings.user,
    rooms: settings.rooms,
    open: opener(settings.destination),
    key,
    failFast: true,
    events,
  });
  const stopped = new Promise<StopReason>((resolve) => {
    events.stopped = resolve;
  });
  return mode === 'interactive'
    ? interactive(io, client, events, stopped)
    : sender(io, client, events, stopped, mode === 'json');
}

/** One line on stderr, as the rest of the command line says things. */
function say(ctx: CommandContext, text: string): void {
  ctx.stderr(`runspec-room: ${text}\n`);
}

function stopCode(reason: StopReason): number {
  return reason.kind === 'auth_failed' || reason.kind === 'revoked'
    ? ConsoleExit.Credential
    : ConsoleExit.Failed;
}

function stopLine(io: Io, reason: StopReason): string {
  return reason.kind === 'unreachable'
    ? `error: could not connect to ${describe(io.settings.destination)}: ${reason.message}`
    : `error: ${stopMessage(reason)}`;
}

/** Whether a line has something to send (the server refuses text with nothing visible). */
const visible = (line: string): boolean => /[^\s\p{Default_Ignorable_Code_Point}]/u.test(line);

/** Piped and --json: each stdin line a message, at most SEND_WINDOW awaiting their echo. */
async function sender(
  io: Io,
  client: RoomClient,
  events: ClientEvents,
  stopped: Promise<StopReason>,
  json: boolean,
): Promise<number> {
  const { ctx } = io;
  const room = io.settings.rooms[0] as string;
  const out = (frame: object): void => ctx.stdout(`${JSON.stringify(frame)}\n`);
  // A reader that went away (`| head`) ends the console, as it would any filter.
  process.stdout.on('error', () => client.close());
  if (json) {
    events.message = out;
    events.whisper = out;
    events.frame = out;
  }
  events.notice = (frame) => {
    if (isRateLimited(frame)) say(ctx, 'the server is slowing this connection (rate limit); nothing is lost');
  };
  let downSince: number | undefined;
  events.disconnected = ({ reason, retryMs }) => {
    downSince ??= Date.now();
    say(ctx, `connection lost (${reason}); reconnecting in ${(retryMs / 1000).toFixed(1)} s`);
  };
  let reached = false;
  events.ready = ({ resumed }) => {
    downSince = undefined;
    reached = true;
    if (resumed) say(ctx, 'reconnected');
    poke();
  };
  events.lost = ({ room: r, with: w, from, to }) =>
    say(ctx, `messages ${from} to ${to} of ${r ? `#${r}` : `the whispers with ${w}`} are no longer stored`);

  const queue: string[] = [];
  const sends = new Set<Promise<void>>();
  let lines = 0;
  let failed = 0;
  let inputDone = false;
  let gaveUp = false;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    wake?.();
    wake = undefined;
  };
  const input = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  input.on('line', (line) => {
    if (!visible(line)) return;
    queue.push(line);
    if (queue.length > 4 * SEND_WINDOW) input.pause();
    poke();
  });
  input.on('close', () => {
    inputDone = true;
    poke();
  });
  const stop = (): void => {
    client.close();
    poke();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  void stopped.then(poke);
  const giveUp = setInterval(() => {
    if (inputDone && downSince !== undefined && Date.now() - downSince > GIVE_UP_MS) {
      gaveUp = true;
      stop();
    }
  }, 1000);
  client.start().catch(() => {});
  try {
    // Even with nothing to send it connects once, so an unreachable server is never a success.
    while (!client.stopped && !(reached && inputDone && queue.length === 0 && client.unechoed === 0)) {
      while (queue.length > 0 && client.unechoed < SEND_WINDOW) {
        lines += 1;
        const sent = client.send(room, queue.shift() as string).then(
          () => {},
          () => {
            failed += 1;
          },
        );
        sends.add(sent);
        void sent.then(() => {
          sends.delete(sent);
          poke();
        });
      }
      if (queue.length < SEND_WINDOW) input.resume();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    await Promise.allSettled([...sends]);
    const total = lines + queue.length;
    const missing = failed + queue.length;
    const reason = client.stopped;
    const count = missing > 0 ? `${missing} of ${total} lines were not echoed` : '';
    if (reason && reason.kind !== 'closed') {
      say(ctx, `${stopLine(io, reason)}${count ? `; ${count}` : ''}`);
      return stopCode(reason);
    }
    if (missing > 0) {
      const why = gaveUp ? ` (the server was unreachable for ${GIVE_UP_MS / 1000} s)` : '';
      say(ctx, `error: ${count}${why}`);
      return ConsoleExit.Failed;
    }
    return ConsoleExit.Ok;
  } finally {
    clearInterval(giveUp);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    input.close();
    process.stdin.destroy();
    client.close();
  }
}

/** The room on a terminal: the transcript above, the prompt below, kept whole as lines arrive. */
async function interactive(
  io: Io,
  client: RoomClient,
  events: ClientEvents,
  stopped: Promise<StopReason>,
): Promise<number> {
  const { ctx, settings } = io;
  const p: Painter = painter(!settings.noColor && process.stdout.isTTY === true);
  let current = settings.rooms[0] as string;
  const rl: Interface = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: true,
    historySize: 200,
  });
  const setPrompt = (): void => rl.setPrompt(`#${current}> `);
  setPrompt();
  const show = (text: string): void => {
    // Clear the prompt line, print above it, then draw the prompt again with what was being typed.
    process.stdout.write('\r\u001b[2K');
    process.stdout.write(`${text}\n`);
    rl.prompt(true);
  };
  const info = (text: string): void => show(note(text, p));
  const many = (): boolean => client.rooms.length > 1;
  const present = new Map<string, Map<string, string>>();

  events.message = (m) => show(formatMessage(m, client.user, many(), p));
  events.whisper = (w) => show(formatWhisper(w, client.user, p));
  events.presence = (frame) => {
    const room = present.get(frame.room) ?? new Map<string, string>();
    present.set(frame.room, room);
    if (room.get(frame.user) === frame.status) return;
    const first = !room.has(frame.user);
    room.set(frame.user, frame.status);
    if (frame.user === client.user) return;
    const where = many() ? ` in #${frame.room}` : '';
    if (frame.status === 'available') info(`${frame.user} is ${first ? 'here' : 'back'}${where}`);
    else info(`${frame.user} is away${where}`);
  };
  events.notice = (frame) => {
    if (isRateLimited(frame)) info('the server is slowing this connection (rate limit); nothing is lost');
  };
  events.error = (frame) => info(`the server said ${frame.code}: ${frame.message}`);
  events.disconnected = ({ reason, retryMs }) =>
    info(`connection lost (${reason}); reconnecting in ${(retryMs / 1000).toFixed(1)} s`);
  events.lost = ({ room, with: w, from, to }) =>
    info(`messages ${from} to ${to} of ${room ? `#${room}` : `the whispers with ${w}`} are no longer stored`);
  events.ready = ({ user, resumed, authenticated }) => {
    if (resumed) {
      info('reconnected; nothing was missed');
      void reconcile();
      return;
    }
    const how = authenticated ? ' (signed in with your key)' : '';
    info(`in #${client.rooms.join(', #')} as ${user}${how}; /help lists the commands`);
  };

  /** After a reconnect, people who left meanwhile sent no presence: ask who is there. */
  const reconcile = async (): Promise<void> => {
    for (const room of client.rooms) {
      const who = await client.request<WhoOut>({ type: 'who', room }).catch(() => undefined);
      const known = present.get(room);
      if (!who || !known) continue;
      const here = new Set(who.users.map((u) => u.user));
      for (const [user, status] of known) {
        if (here.has(user) || status !== 'available') continue;
        known.set(user, 'away');
        if (user !== client.user) info(`${user} is away${many() ? ` in #${room}` : ''}`);
      }
    }
  };

  const refused = (error: unknown): void => {
    if (error instanceof RequestError) info(`refused (${error.code}): ${error.message}`);
    else info(error instanceof Error ? error.message : String(error));
  };

  let quitting: (() => void) | undefined;
  const quit = new Promise<void>((resolve) => {
    quitting = resolve;
  });

  const command = async (line: string): Promise<void> => {
    const [word = '', ...rest] = line.slice(1).split(/\s+/u);
    const arg = line.slice(1 + word.length).trim();
    switch (word) {
      case 'join': {
        if (!arg) return info('usage: /join ROOM');
        const joined = await client.join(arg);
        current = joined.room;
        setPrompt();
        return info(`in #${current} (newest message ${joined.seq})`);
      }
      case 'leave': {
        const left = current;
        await client.leave(left);
        present.delete(left);
        current = client.rooms[0] as string;
        setPrompt();
        return info(`left #${left}; now in #${current}`);
      }
      case 'rooms': {
        const list = await client.request<RoomsOut>({ type: 'rooms' });
        const lines = list.rooms.map(
          (r) =>
            `#${r.room}: ${r.members} here, ${r.seq} messages${client.rooms.includes(r.room) ? ' (joined)' : ''}`,
        );
        return info(lines.length ? `rooms: ${lines.join('; ')}${list.more ? '; …' : ''}` : 'no rooms yet');
      }
      case 'who': {
        const who = await client.request<WhoOut>({ type: 'who', room: current });
        const people = who.users.map(
          (u) =>
            `${u.user} (${u.kind === 'human' ? 'person' : 'console'}${u.status === 'away' ? ', away' : ''})`,
        );
        return info(`in #${current}: ${people.join(', ') || 'nobody'}`);
      }
      case 'msg': {
        const [to, ...words] = rest;
        const text = arg.slice((to ?? '').length).trim();
        if (!to || !text || words.length === 0) return info('usage: /msg USER TEXT');
        await client.whisper(to, text);
        return;
      }
      case 'away':
      case 'back':
        await client.request({ type: 'presence', status: word === 'away' ? 'away' : 'available' });
        return info(word === 'away' ? 'you are away' : 'you are back');
      case 'history': {
        const n = arg ? Number(arg) : 20;
        if (!Number.isInteger(n) || n < 1 || n > HISTORY_MAX)
          return info(`usage: /history [N], N from 1 to ${HISTORY_MAX}`);
        const page = await client.request<HistoryOut>({ type: 'history', room: current, limit: n });
        info(`the last ${page.messages.length} messages of #${current}:`);
        for (const m of page.messages)
          if (m.type === 'message') show(formatMessage(m as MessageOut, client.user, false, p));
        return info('end of history');
      }
      case 'quit':
        quitting?.();
        return;
      case 'help':
        return info(`commands: ${COMMANDS_HELP.join('\n   ')}`);
      default:
        return info(`unknown command /${word}; /help lists them`);
    }
  };

  rl.on('line', (line) => {
    // Readline leaves the typed line on screen; the echo shows it properly, so take it away when it
    // fits on one row (a wrapped one is left as it is).
    if (`#${current}> ${line}`.length < (process.stdout.columns ?? 0))
      process.stdout.write('\u001b[1A\u001b[2K');
    if (line.startsWith('/') && !line.startsWith('//')) {
      command(line.trim()).catch(refused);
    } else if (visible(line)) {
      client.send(current, line.startsWith('//') ? line.slice(1) : line).catch(refused);
    }
    rl.prompt();
  });
  rl.on('close', () => quitting?.());
  rl.on('SIGINT', () => quitting?.());

  info(`connecting to ${describe(settings.destination)} …`);
  client.start().catch(() => {});
  const outcome = await Promise.race([quit.then(() => undefined), stopped]);
  if (outcome === undefined && client.unechoed > 0) {
    info(`waiting for ${client.unechoed} message(s) to be stored…`);
    await Promise.race([client.drained(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  }
  const unsent = client.unechoed;
  client.close();
  rl.close();
  process.stdin.destroy();
  process.stdout.write('\n');
  if (outcome !== undefined && outcome.kind !== 'closed') {
    say(ctx, stopLine(io, outcome));
    return stopCode(outcome);
  }
  if (unsent > 0) {
    say(ctx, `error: ${unsent} message(s) were not confirmed as stored`);
    return ConsoleExit.Failed;
  }
  return ConsoleExit.Ok;
}
