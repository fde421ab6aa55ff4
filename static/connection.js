// The page's one WebSocket: it opens for a room, reconnects with capped exponential backoff and jitter,
// labels requests with refs, and stays calmly signed out when the sign-in has ended.

import { CloseCode } from './protocol.js';

const STABLE_MS = 10_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;

/** One socket, several rooms; states: offline, connecting, connected, reconnecting, signed-out. */
export class Connection {
  #socket = null;
  #attempt = 0;
  #retryTimer = 0;
  #stableTimer = 0;
  #refs = 0;
  #pending = new Map();
  #wanted = false;
  #url;
  #onFrame;
  #onClose;
  #onState;

  /**
   * `url()` names the socket to open (null: nothing to join); `onFrame(frame, request)` gets every
   * frame, with what was sent with the frame's ref; `onClose(code)` follows a dropped socket, and may
   * stop() the connection.
   */
  constructor({ url, onFrame, onClose, onState }) {
    this.#url = url;
    this.#onFrame = onFrame;
    this.#onClose = onClose;
    this.#onState = onState;
    this.state = 'offline';
    this.retryAt = 0;
  }

  /** Connect, and keep reconnecting until stop(). */
  start() {
    this.#wanted = true;
    if (!this.#socket) this.#connect();
  }

  /** Close on purpose: no reconnect. */
  stop() {
    this.#wanted = false;
    clearTimeout(this.#retryTimer);
    this.#drop(1000, 'leaving');
    this.#setState('offline');
  }

  /** The first room was joined (its welcome came): the connection is usable. */
  welcomed() {
    this.#attempt = 0;
    this.#setState('connected');
  }

  /** After the network came back or the tab was shown again, skip the rest of the wait. */
  reconnectNow() {
    if (this.#wanted && !this.#socket && this.state === 'reconnecting') this.#connect();
  }

  /** Send a frame; with `request`, it gets a ref and its reply is handed over with that request. */
  send(frame, request) {
    const ws = this.#socket;
    if (ws?.readyState !== WebSocket.OPEN) return false;
    let out = frame;
    if (request) {
      this.#refs += 1;
      const ref = `p${this.#refs}`;
      this.#pending.set(ref, request);
      out = { ...frame, ref };
    }
    ws.send(JSON.stringify(out));
    return true;
  }

  #connect() {
    clearTimeout(this.#retryTimer);
    const url = this.#wanted ? this.#url() : null;
    if (!url || this.#socket) return;
    const ws = new WebSocket(url);
    this.#socket = ws;
    this.#setState('connecting');
    ws.addEventListener('open', () => {
      if (ws !== this.#socket) return;
      this.#stableTimer = setTimeout(() => {
        this.#attempt = 0;
      }, STABLE_MS);
    });
    ws.addEventListener('message', (event) => {
      if (ws === this.#socket) this.#receive(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (ws === this.#socket) this.#closed(event.code);
    });
  }

  #receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.type !== 'string') return;
    let request;
    if (typeof frame.ref === 'string') {
      request = this.#pending.get(frame.ref);
      this.#pending.delete(frame.ref);
    }
    this.#onFrame(frame, request);
  }

  /** Forget the current socket first, so its close event is not taken for a dropped connection. */
  #drop(code, reason) {
    const ws = this.#socket;
    this.#socket = null;
    this.#pending.clear();
    clearTimeout(this.#stableTimer);
    ws?.close(code, reason);
  }

  #closed(code) {
    this.#socket = null;
    this.#pending.clear();
    clearTimeout(this.#stableTimer);
    this.#onClose(code);
    if (!this.#wanted) return;
    if (code === CloseCode.Unauthorized) {
      this.#wanted = false;
      this.#setState('signed-out');
      return;
    }
    const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.#attempt);
    this.#attempt += 1;
    this.retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#setState('reconnecting');
  }

  #setState(next) {
    this.state = next;
    this.#onState(next);
  }
}
