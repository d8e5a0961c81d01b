// The WebSocket: authenticated by a first frame (never a token in the URL),
// reconnected with backoff, its state reported for the page to show.

const PING_EVERY = 20000;
const PONG_WITHIN = 10000;

export class Live {
  // hooks: token() -> Promise<string>, renew() -> Promise, ready(), frame(f), state(name, detail)
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.isReady = false;
    this.attempt = 0;
    this.timer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.running = false;
    window.addEventListener("offline", () => this.dropForOffline());
    window.addEventListener("online", () => this.running && this.connectSoon(0));
  }

  start() {
    this.running = true;
    this.connectSoon(0);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.closeSocket();
    this.hooks.state("idle");
  }

  send(frame) {
    if (!this.isReady) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  retryNow() {
    if (this.running && !this.ws) this.connectSoon(0);
  }

  closeSocket() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.isReady = false;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
      ws.close(1000);
    }
  }

  dropForOffline() {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.closeSocket();
    this.hooks.state("offline");
  }

  connectSoon(delay) {
    clearTimeout(this.timer);
    if (!this.running) return;
    if (!navigator.onLine) {
      this.hooks.state("offline");
      return; // the "online" event brings us back
    }
    if (delay > 0) {
      this.hooks.state("waiting", Math.ceil(delay / 1000));
      this.timer = setTimeout(() => this.connect(), delay);
    } else {
      this.connect();
    }
  }

  async connect() {
    this.closeSocket();
    this.hooks.state("connecting");
    let token;
    try {
      token = await this.hooks.token();
    } catch {
      return this.retryLater();
    }
    if (!this.running) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/ws`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(event.code);
  }

  receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    clearTimeout(this.pongTimer);
    if (frame.type === "ready") {
      this.isReady = true;
      this.attempt = 0;
      this.hooks.state("online");
      this.pingTimer = setInterval(() => this.ping(), PING_EVERY);
      this.hooks.ready();
      return;
    }
    if (frame.type === "pong") return;
    this.hooks.frame(frame);
  }

  ping() {
    if (!this.send({ type: "ping" })) return;
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => {
      // No answer: the connection is dead without having said so.
      this.closeSocket();
      this.retryLater();
    }, PONG_WITHIN);
  }

  async closed(code) {
    this.ws = null;
    this.isReady = false;
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    if (!this.running) return;
    if (code === 4001) {
      // The access token was refused (expired or the session ended): renew it once.
      this.hooks.state("connecting");
      try {
        await this.hooks.renew();
      } catch {
        return; // renew() signs the person out when the session is over
      }
      return this.connectSoon(0);
    }
    this.retryLater();
  }

  retryLater() {
    const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.6 + Math.random() * 0.4);
    this.attempt += 1;
    this.connectSoon(delay);
  }
}
