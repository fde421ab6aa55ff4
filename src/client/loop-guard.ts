// The MCP server's loop guard: agents answering agents can talk forever, so an agent's sends are capped
// per minute, and a room that has heard only consoles for a while makes it wait until a person speaks.
import type { MessageOut } from '../protocol/frames.ts';

/** The guard's limits. */
export interface LoopLimits {
  /** This agent's messages and whispers in any 60 seconds. */
  readonly maxPerMinute: number;
  /** Messages in a row from consoles (agents, via console) in a room with no person's (via browser) between. */
  readonly maxAgentRun: number;
}

const MINUTE_MS = 60_000;

/** Counts what the guard needs, and says why a send must wait. */
export class LoopGuard {
  readonly #limits: LoopLimits;
  readonly #now: () => number;
  readonly #sent: number[] = [];
  readonly #runs = new Map<string, number>();

  constructor(limits: LoopLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /** A message of the room, anyone's (this agent's own included), in order. */
  observe(message: MessageOut): void {
    if (message.via === 'browser') this.#runs.set(message.room, 0);
    else if (message.via === 'console') this.#runs.set(message.room, (this.#runs.get(message.room) ?? 0) + 1);
  }

  /** Messages in a row from consoles in a room. */
  run(room: string): number {
    return this.#runs.get(room) ?? 0;
  }

  /** Why this agent may not send now (to `room`, or a whisper), or undefined when it may. */
  refusal(room?: string): string | undefined {
    const now = this.#now();
    while (this.#sent.length > 0 && now - (this.#sent[0] as number) >= MINUTE_MS) this.#sent.shift();
    const { maxPerMinute, maxAgentRun } = this.#limits;
    if (this.#sent.length >= maxPerMinute) {
      const waitS = Math.ceil((MINUTE_MS - (now - (this.#sent[0] as number))) / 1000);
      return (
        `Not sent: this agent has sent ${this.#sent.length} messages in the last minute, the most it may ` +
        `(--max-per-minute ${maxPerMinute}). Wait ${waitS} s before sending again; meanwhile ` +
        'wait_for_messages shows what people say.'
      );
    }
    if (room !== undefined && this.run(room) >= maxAgentRun) {
      return (
        `Not sent: the last ${this.run(room)} messages in #${room} came from consoles and agents with no ` +
        `person speaking in between (--max-agent-run ${maxAgentRun}), which looks like agents answering ` +
        'each other. Call wait_for_messages until a person (via "browser") speaks in the room; sending works again then.'
      );
    }
    return undefined;
  }

  /** This agent sent a message or whisper now. */
  sent(): void {
    this.#sent.push(this.#now());
  }
}
