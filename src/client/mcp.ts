// `runspec-room mcp`: a Model Context Protocol server over stdio on the shared client core, so an agent
// uses rooms as tools; it keeps the agent's cursor per room across reconnects and guards against loops.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import * as z from 'zod';
import type { CommandContext } from '../cli/commands.ts';
import { UsageError } from '../cli/commands.ts';
import type { HistoryOut, MessageOut, RoomsOut, WhisperOut, WhoOut } from '../protocol/frames.ts';
import { HISTORY_DEFAULT, HISTORY_MAX, nameProblem } from '../protocol/frames.ts';
import { VERSION } from '../version.ts';
import { isRateLimited, RequestError, RoomClient, type StopReason, stopMessage } from './core.ts';
import { keySigner } from './keys.ts';
import { describe, opener } from './link.ts';
import { LoopGuard } from './loop-guard.ts';
import { mentions } from './mention.ts';
import { COMMON_HELP, ENV_HELP, type McpSettings, mcpSettings } from './options.ts';

/** The longest a wait_for_messages call may wait (MCP hosts time tool calls out at about a minute). */
export const MAX_WAIT_S = 50;

/** How long a tool waits for the room server before saying it cannot be reached. */
const REPLY_TIMEOUT_MS = 20_000;

/** Messages kept for the agent per room; older ones are dropped (and counted) past it. */
const INBOX_MAX = 1000;

const HELP = `Usage: runspec-room mcp --room ROOM [--user NAME] [--ssh HOST | --connect HOST:PORT] [--key FILE] [--mentions-only]

A Model Context Protocol server on stdin/stdout: an agent reads and writes rooms through its tools
(send_message, wait_for_messages, read_messages, who, list_rooms, whisper, join_room, leave_room,
set_status). Add it to an agent's MCP configuration; the README shows how.

${COMMON_HELP}
  --mentions-only      wait_for_messages returns only messages that mention you (and whispers) unless asked otherwise
  --max-per-minute N   this agent's messages per minute, at most (default 30)
  --max-agent-run N    messages in a row from consoles in a room with no person between, before sending waits (default 20)

${ENV_HELP}
`;

/** A message as the agent sees it. */
interface AgentMessage {
  room?: string;
  whisper?: true;
  from?: string;
  to?: string;
  sender?: string;
  via?: string;
  seq: number;
  id: string;
  text: string;
  time: string;
  mentions_you?: true;
}

/** The agent's unread messages per conversation, and long-polls waiting for them. */
class Inbox {
  readonly #items: Array<{ key: string; message: AgentMessage; mention: boolean }> = [];
  readonly #waiters = new Set<() => void>();
  /** The last seq handed to the agent, per room (and per whisper conversation, as "@name"). */
  readonly cursor = new Map<string, number>();
  dropped = 0;

  push(key: string, message: AgentMessage, mention: boolean): void {
    this.#items.push({ key, message, mention });
    if (this.#items.filter((i) => i.key === key).length > INBOX_MAX) {
      const oldest = this.#items.findIndex((i) => i.key === key);
      this.#items.splice(oldest, 1);
      this.dropped += 1;
    }
    for (const wake of [...this.#waiters]) wake();
  }

  /** Take what is new in `room` (all rooms and whispers when undefined); with `mentionsOnly`, skip the rest. */
  take(room: string | undefined, mentionsOnly: boolean): { messages: AgentMessage[]; skipped: number } {
    const inScope = (key: string): boolean => room === undefined || key === room;
    const taken = this.#items.filter((i) => inScope(i.key));
    const wanted = taken.filter((i) => !mentionsOnly || i.mention);
    if (wanted.length === 0) return { messages: [], skipped: 0 };
    for (let i = this.#items.length - 1; i >= 0; i--)
      if (inScope(this.#items[i]?.key ?? '')) this.#items.splice(i, 1);
    for (const item of taken) this.cursor.set(item.key, item.message.seq);
    return { messages: wanted.map((i) => i.message), skipped: taken.length - wanted.length };
  }

  /** Forget a room's unread messages (the agent left it). */
  forget(room: string): void {
    for (let i = this.#items.length - 1; i >= 0; i--)
      if (this.#items[i]?.key === room) this.#items.splice(i, 1);
  }

  /** Wait until `take` finds something, or the time runs out, or the call is cancelled. */
  async wait(
    room: string | undefined,
    mentionsOnly: boolean,
    ms: number,
    signal: AbortSignal,
  ): Promise<{ messages: AgentMessage[]; skipped: number }> {
    const now = this.take(room, mentionsOnly);
    if (now.messages.length > 0 || ms <= 0) return now;
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        signal.removeEventListener('abort', finish);
        resolve({ messages: [], skipped: 0 });
      };
      const check = (): void => {
        const got = this.take(room, mentionsOnly);
        if (got.messages.length === 0) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        signal.removeEventListener('abort', finish);
        resolve(got);
      };
      const timer = setTimeout(finish, ms);
      this.#waiters.add(check);
      signal.addEventListener('abort', finish, { once: true });
    });
  }
}

const iso = (ts: number): string => new Date(ts * 1000).toISOString();

function fromMessage(m: MessageOut, me: string): AgentMessage {
  return {
    room: m.room,
    seq: m.seq,
    id: m.id,
    sender: m.sender,
    ...(m.via ? { via: m.via } : {}),
    text: m.text,
    time: iso(m.ts),
    ...(mentions(m.text, me) ? { mentions_you: true as const } : {}),
  };
}

function fromWhisper(w: WhisperOut): AgentMessage {
  return { whisper: true, from: w.from, to: w.to, seq: w.seq, id: w.id, text: w.text, time: iso(w.ts) };
}

type ToolResult = { content: Array<{ type: 'text'; text: string }>; isError?: boolean };

const ok = (value: unknown): ToolResult => ({ content: [{ type: 'text', text: JSON.stringify(value) }] });
const fail = (text: string): ToolResult => ({ content: [{ type: 'text', text }], isError: true });

class Unreachable extends Error {}

function within<T>(promise: Promise<T>, ms = REPLY_TIMEOUT_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Unreachable('no answer')), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** The MCP command. */
export async function runMcp(ctx: CommandContext): Promise<number> {
  const settings = mcpSettings(ctx.argv, ctx.env);
  if (!settings) {
    ctx.stdout(HELP);
    return 0;
  }
  const key = settings.keyFile
    ? await keySigner(settings.keyFile).catch((error: unknown) => {
        throw new UsageError(`--key: ${error instanceof Error ? error.message : String(error)}`);
      })
    : undefined;
  const log = (text: string): void => ctx.stderr(`runspec-room mcp: ${text}\n`);
  const inbox = new Inbox();
  const guard = new LoopGuard(settings);
  let stopped: StopReason | undefined;
  const client = new RoomClient({
    user: settings.user,
    rooms: settings.rooms,
    open: opener(settings.destination),
    key,
    events: {
      message: (m) => {
        guard.observe(m);
        if (m.sender === client.user) inbox.cursor.set(m.room, m.seq);
        else inbox.push(m.room, fromMessage(m, client.user), mentions(m.text, client.user));
      },
      whisper: (w) => {
        if (w.from !== client.user) inbox.push(`@${w.from}`, fromWhisper(w), true);
      },
      ready: ({ user, resumed }) =>
        log(`${resumed ? 'reconnected' : 'connected'} to ${describe(settings.destination)} as ${user}`),
      disconnected: ({ reason, retryMs }) =>
        log(`connection lost (${reason}); reconnecting in ${(retryMs / 1000).toFixed(1)} s`),
      notice: (frame) => {
        if (isRateLimited(frame)) log('the server is slowing this connection (rate limit); nothing is lost');
      },
      stopped: (reason) => {
        stopped = reason;
        if (reason.kind !== 'closed') log(stopMessage(reason));
      },
    },
  });
  const server = createServer(settings, client, inbox, guard, () => stopped);
  await server.connect(new StdioServerTransport());
  client.start().catch(() => {});
  await new Promise<void>((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('close', resolve);
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  client.close();
  await server.close();
  process.stdin.destroy();
  return 0;
}

/** The MCP server and its tools. */
function createServer(
  settings: McpSettings,
  client: RoomClient,
  inbox: Inbox,
  guard: LoopGuard,
  stopped: () => StopReason | undefined,
): McpServer {
  const server = new McpServer(
    { name: 'runspec-room', version: VERSION },
    {
      instructions:
        `You are "${settings.user}" in a chat room server shared by people (browsers) and consoles. ` +
        'Call wait_for_messages to hear what is said (it returns each message once, never your own), ' +
        'send_message to speak. Prefer answering people; do not answer other agents in a loop.',
    },
  );
  const home = settings.rooms[0] as string;

  /** Why a room name is refused, or undefined. */
  const badRoom = (room: string, what = 'room'): string | undefined => {
    const problem = nameProblem(room.trim());
    return problem ? `${what} ${problem}` : undefined;
  };

  /** A tool's failure, said so that the agent knows what to do next. */
  const explain = (error: unknown, room?: string): ToolResult => {
    const stop = stopped();
    if (stop && stop.kind !== 'closed')
      return fail(`${stopMessage(stop)}. A person must fix the access; stop using these tools.`);
    if (error instanceof Unreachable)
      return fail(
        'The room server is not answering (the connection is being re-established). Try again in a minute.',
      );
    if (error instanceof RequestError) {
      if (error.code === 'not_joined')
        return fail(`You are not in #${room ?? '?'}. Call join_room with {"room":"${room ?? ''}"} first.`);
      if (error.code === 'unknown_user') return fail(`${error.message}. Check the name with who.`);
      if (error.code === 'last_room') return fail('That is your only room; join another before leaving it.');
      return fail(`Refused (${error.code}): ${error.message}`);
    }
    return fail(`Failed: ${error instanceof Error ? error.message : String(error)}. Try again.`);
  };

  const roomArg = z.string().min(1).max(200);

  server.registerTool(
    'send_message',
    {
      description: `Say something in a room (default #${home}). Returns the stored message's id and seq.`,
      inputSchema: {
        room: roomArg.optional().describe(`the room; default ${home}`),
        text: z.string().min(1).describe('the message text'),
      },
    },
    async ({ room = home, text }) => {
      const bad = badRoom(room);
      if (bad) return fail(bad);
      if (!client.rooms.includes(room)) return explain(new RequestError('not_joined', ''), room);
      const refusal = guard.refusal(room);
      if (refusal) return fail(refusal);
      guard.sent();
      try {
        const echo = await within(client.send(room, text), 30_000);
        return ok({ room: echo.room, id: echo.id, seq: echo.seq });
      } catch (error) {
        if (error instanceof Unreachable && !stopped())
          return fail(
            'Not confirmed yet: the room server is not reachable right now. The message is queued and will ' +
              'be stored exactly once when the connection is back (it carries an id), so do not send it again.',
          );
        return explain(error, room);
      }
    },
  );

  server.registerTool(
    'wait_for_messages',
    {
      description:
        'Wait for new messages (long poll) and return them: each message once, in order, never your own. ' +
        `Without room, every room you are in and whispers to you. Returns an empty list when timeout_s passes.`,
      inputSchema: {
        room: roomArg.optional().describe('one room; default every room you are in, and whispers'),
        timeout_s: z
          .number()
          .min(0)
          .max(MAX_WAIT_S)
          .optional()
          .describe(`how long to wait, at most ${MAX_WAIT_S} seconds (default 30)`),
        mentions_only: z
          .boolean()
          .optional()
          .describe(`only messages that mention you, and whispers (default ${settings.mentionsOnly})`),
      },
    },
    async ({ room, timeout_s = 30, mentions_only = settings.mentionsOnly }, extra) => {
      if (room !== undefined) {
        const bad = badRoom(room);
        if (bad) return fail(bad);
        if (!client.rooms.includes(room)) return explain(new RequestError('not_joined', ''), room);
      }
      const stop = stopped();
      if (stop && stop.kind !== 'closed') return explain(undefined);
      const got = await inbox.wait(room, mentions_only, timeout_s * 1000, extra.signal);
      const dropped = inbox.dropped;
      inbox.dropped = 0;
      return ok({
        messages: got.messages,
        ...(got.messages.length === 0 ? { timed_out: true } : {}),
        ...(got.skipped > 0 ? { skipped_without_mention: got.skipped } : {}),
        ...(dropped > 0 ? { dropped_oldest: dropped, hint: 'read_messages shows older messages' } : {}),
      });
    },
  );

  server.registerTool(
    'read_messages',
    {
      description:
        'Read a room you are in, newest page first or before a seq (oldest first in the page). Does not move your wait_for_messages cursor.',
      inputSchema: {
        room: roomArg.describe('the room'),
        before: z.number().int().min(1).optional().describe('only messages before this seq'),
        limit: z
          .number()
          .int()
          .min(1)
          .max(HISTORY_MAX)
          .optional()
          .describe(`how many, at most ${HISTORY_MAX} (default ${HISTORY_DEFAULT})`),
      },
    },
    async ({ room, before, limit }) => {
      const bad = badRoom(room);
      if (bad) return fail(bad);
      if (!client.rooms.includes(room)) return explain(new RequestError('not_joined', ''), room);
      try {
        const page = await within(
          client.request<HistoryOut>({
            type: 'history',
            room,
            ...(before === undefined ? {} : { before }),
            ...(limit === undefined ? {} : { limit }),
          }),
        );
        const messages = page.messages.map((m) =>
          m.type === 'message' ? fromMessage(m as MessageOut, client.user) : fromWhisper(m as WhisperOut),
        );
        return ok({ room, messages, more: page.more });
      } catch (error) {
        return explain(error, room);
      }
    },
  );

  server.registerTool(
    'who',
    {
      description: 'Who is in a room now: each user, whether a person or a console, and their status.',
      inputSchema: { room: roomArg.describe('the room (joined or not)') },
    },
    async ({ room }) => {
      const bad = badRoom(room);
      if (bad) return fail(bad);
      try {
        const who = await within(client.request<WhoOut>({ type: 'who', room }));
        return ok({
          room,
          users: who.users.map((u) => ({
            user: u.user,
            kind: u.kind === 'human' ? 'person' : 'console',
            status: u.status,
          })),
        });
      } catch (error) {
        return explain(error, room);
      }
    },
  );

  server.registerTool(
    'list_rooms',
    { description: 'The rooms on the server, most recently active first, and which ones you are in.' },
    async () => {
      try {
        const list = await within(client.request<RoomsOut>({ type: 'rooms' }));
        return ok({
          rooms: list.rooms.map((r) => ({
            room: r.room,
            members: r.members,
            messages: r.seq,
            joined: client.rooms.includes(r.room),
          })),
          more: list.more,
        });
      } catch (error) {
        return explain(error);
      }
    },
  );

  server.registerTool(
    'whisper',
    {
      description: 'Send a private message to one user; only the two of you see it. Returns its id and seq.',
      inputSchema: { to: z.string().min(1).max(200).describe('the user'), text: z.string().min(1) },
    },
    async ({ to, text }) => {
      const bad = badRoom(to, 'to');
      if (bad) return fail(bad);
      const refusal = guard.refusal();
      if (refusal) return fail(refusal);
      guard.sent();
      try {
        const echo = await within(client.whisper(to.trim(), text), 30_000);
        return ok({ to: echo.to, id: echo.id, seq: echo.seq });
      } catch (error) {
        return explain(error);
      }
    },
  );

  server.registerTool(
    'join_room',
    {
      description:
        'Join a room: from now on wait_for_messages returns its new messages (read_messages shows older ones).',
      inputSchema: { room: roomArg.describe('the room') },
    },
    async ({ room }) => {
      const bad = badRoom(room);
      if (bad) return fail(bad);
      try {
        const joined = await within(client.join(room.trim()));
        return ok({ room: joined.room, newest_seq: joined.seq, rooms: client.rooms });
      } catch (error) {
        return explain(error, room);
      }
    },
  );

  server.registerTool(
    'leave_room',
    { description: 'Leave a room you are in.', inputSchema: { room: roomArg.describe('the room') } },
    async ({ room }) => {
      const bad = badRoom(room);
      if (bad) return fail(bad);
      try {
        await within(client.leave(room.trim()));
        inbox.forget(room.trim());
        return ok({ left: room.trim(), rooms: client.rooms });
      } catch (error) {
        return explain(error, room);
      }
    },
  );

  server.registerTool(
    'set_status',
    {
      description: 'Set your status in every room you are in.',
      inputSchema: { status: z.enum(['available', 'away']).describe('available or away') },
    },
    async ({ status }) => {
      try {
        await within(client.request({ type: 'presence', status }));
        return ok({ status });
      } catch (error) {
        return explain(error);
      }
    },
  );

  return server;
}
