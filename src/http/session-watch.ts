// Closes a browser's sockets within a second of its session ending (logout, expiry, deletion).
import type { Log } from '../log.ts';
import { CloseCode } from '../protocol/codes.ts';
import type { Sessions } from '../store/sessions.ts';

type Close = (code: number, reason: string) => void;

/** Tracks the open sockets of each session and checks the sessions once a second. */
export class SessionWatch {
  readonly #sockets = new Map<string, Set<Close>>();
  readonly #sessions: Sessions;
  readonly #log: Log;
  readonly #intervalMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  #checking = false;

  constructor(sessions: Sessions, log: Log, intervalMs = 1000) {
    this.#sessions = sessions;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** Watch one socket of a session; returns the function that stops watching it. */
  attach(sessionId: string, close: Close): () => void {
    let set = this.#sockets.get(sessionId);
    if (!set) {
      set = new Set();
      this.#sockets.set(sessionId, set);
    }
    set.add(close);
    return () => {
      set.delete(close);
      if (set.size === 0 && this.#sockets.get(sessionId) === set) this.#sockets.delete(sessionId);
    };
  }

  /** Close every socket of a session now (logout). */
  end(sessionId: string): void {
    const set = this.#sockets.get(sessionId);
    this.#sockets.delete(sessionId);
    for (const close of set ?? []) close(CloseCode.Unauthorized, 'session ended');
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.#check(), this.#intervalMs);
    this.#timer.unref?.();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      this.#ticks += 1;
      const ids = [...this.#sockets.keys()];
      const alive = await this.#sessions.alive(ids);
      for (const id of ids) {
        if (!alive.has(id)) {
          this.#log.info('session ended; closing its sockets', { session: id.slice(0, 12) });
          this.end(id);
        }
      }
      // Once a minute: an open socket counts as use, and dead sessions are removed.
      if (this.#ticks % 60 === 0) {
        await this.#sessions.touch([...alive]);
        const removed = await this.#sessions.sweep();
        if (removed > 0) this.#log.debug('expired sessions removed', { count: removed });
      }
    } catch (error) {
      this.#log.warn('session check failed', { error: String(error) });
    } finally {
      this.#checking = false;
    }
  }
}
