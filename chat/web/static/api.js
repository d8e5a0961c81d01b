// HTTP calls to the API, the session's tokens, and errors in plain words.
//
// Where the tokens live (see docs/web-client.md):
// - the access token only in this module's memory: it is sent on every call,
//   lives 15 minutes, and is gone when the tab closes;
// - the refresh token in localStorage ("keep me signed in") or sessionStorage
//   (this tab only), so a reload or a new tab can get a fresh access token
//   without the password. It is used once per refresh and rotated; refreshes
//   from several tabs take turns under a Web Lock, each reading the newest
//   refresh token inside the lock, so no tab replays one already used (the
//   server would end the whole session on a replay).

const REFRESH_KEY = "chat.refreshToken";
const DEVICE_KEY = "chat.deviceId";

let access = null;
let accessExpires = 0;
let refreshing = null;
let refreshTimer = 0;
let onSession = () => {};
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfter = 0) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

export function configure(hooks) {
  onSession = hooks.onSession;
  onSignedOut = hooks.onSignedOut;
}

export function deviceId() {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `${browserName()} · ${randomId(2)}`;
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

// "Chrome on Linux": how the Account page of another device names this one.
function browserName() {
  const ua = navigator.userAgent;
  const browser =
    [["Edg/", "Edge"], ["Firefox/", "Firefox"], ["Chrom", "Chrome"], ["Safari/", "Safari"]].find(([k]) =>
      ua.includes(k),
    )?.[1] || "A browser";
  const system =
    [["Android", "Android"], ["iPhone", "iOS"], ["iPad", "iPadOS"], ["Windows", "Windows"], ["Mac OS", "macOS"], ["Linux", "Linux"]].find(
      ([k]) => ua.includes(k),
    )?.[1] || "";
  return system ? `${browser} on ${system}` : browser;
}

export function randomId(bytes = 12) {
  const buf = new Uint8Array(bytes);
  crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

function storedRefresh() {
  return sessionStorage.getItem(REFRESH_KEY) || localStorage.getItem(REFRESH_KEY);
}

function storeRefresh(token, keep) {
  const inSession = sessionStorage.getItem(REFRESH_KEY) !== null;
  sessionStorage.removeItem(REFRESH_KEY);
  localStorage.removeItem(REFRESH_KEY);
  if (!token) return;
  const useLocal = keep === undefined ? !inSession : keep;
  (useLocal ? localStorage : sessionStorage).setItem(REFRESH_KEY, token);
}

export function hasSession() {
  return access !== null || storedRefresh() !== null;
}

function acceptSession(data, keep) {
  access = data.token;
  accessExpires = Date.now() + data.expiresIn * 1000;
  if (data.refreshToken) storeRefresh(data.refreshToken, keep);
  clearTimeout(refreshTimer);
  if (storedRefresh()) {
    // Renew at four fifths of the access token's life, so calls never wait on it.
    const wait = Math.max(5, data.expiresIn * 0.8) * 1000;
    refreshTimer = setTimeout(() => refresh().catch(() => {}), wait);
  }
  onSession(data.user || { userId: subjectOf(data.token) });
}

// The user id inside an access token (a JWT), for an answer that names no user.
function subjectOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).sub;
  } catch {
    return null;
  }
}

function forget() {
  access = null;
  accessExpires = 0;
  clearTimeout(refreshTimer);
  storeRefresh(null);
}

async function send(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "offline", "No connection to the server.");
  }
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const details = err.details || {};
    const retry = Number(resp.headers.get("Retry-After")) || details.retryAfter || 0;
    throw new ApiError(resp.status, err.code || "http_" + resp.status, err.message, details, retry);
  }
  return data;
}

// A new access token (and refresh token) from the stored refresh token.
export function refresh() {
  if (!refreshing) {
    const run = async () => {
      const token = storedRefresh();
      if (!token) throw new ApiError(401, "unauthorized", "Not signed in.");
      try {
        acceptSession(await send("POST", "/api/token/refresh", { refreshToken: token }));
      } catch (err) {
        if (err.status === 401) {
          forget();
          onSignedOut("Your session has ended. Please sign in again.");
        }
        throw err;
      }
    };
    const locked = navigator.locks ? navigator.locks.request("chat-refresh", run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

// The access token, renewed first when it is about to expire.
export async function freshAccess() {
  if (access && Date.now() < accessExpires - 10000) return access;
  await refresh();
  return access;
}

// An authenticated call; an expired access token is renewed once, silently.
export async function call(method, path, body) {
  const token = await freshAccess();
  try {
    return await send(method, path, body, token);
  } catch (err) {
    if (err.status !== 401 || !storedRefresh()) {
      if (err.status === 401) {
        forget();
        onSignedOut("Your session has ended. Please sign in again.");
      }
      throw err;
    }
  }
  await refresh();
  return send(method, path, body, access);
}

export async function login(identifier, password, keep) {
  const body = { password, deviceId: deviceId() };
  if (identifier.startsWith("+")) body.phone = identifier;
  else body.userId = identifier;
  acceptSession(await send("POST", "/api/login", body), keep);
}

export async function register(fields) {
  await send("POST", "/api/create", { ...fields, deviceId: deviceId() });
}

export async function logout() {
  try {
    if (access) await send("POST", "/api/logout", undefined, access);
  } finally {
    forget();
  }
}

// Sign-out that another action caused (the session ended elsewhere).
export function dropSession() {
  forget();
}

const seconds = (n) => (n === 1 ? "1 second" : `${n} seconds`);

// What went wrong, in words a person understands.
export function describe(err, context = "") {
  if (!(err instanceof ApiError)) return "Something went wrong in this page. Reload and try again.";
  const d = err.details || {};
  switch (err.code) {
    case "offline":
      return "You appear to be offline, or the server cannot be reached. Check your connection and try again.";
    case "invalid_credentials":
      return context === "password"
        ? "Your current password is wrong."
        : "Wrong user ID, phone number or password.";
    case "user_exists":
      return "That user ID or phone number is already registered. Sign in instead, or choose another.";
    case "validation_failed": {
      const items = (d.errors || []).map((e) => `${e.field}: ${e.message}`);
      return items.length ? "Please check: " + items.join("; ") + "." : "Please check what you typed.";
    }
    case "invalid_json":
      return "The page sent something the server could not read. Reload and try again.";
    case "unauthorized":
      return "Your session has ended. Please sign in again.";
    case "insufficient_coins":
      return `This room costs ${d.required} coins; you have ${d.available}. You need ${d.required - d.available} more.`;
    case "not_prime":
      return context === "invite"
        ? "Only prime members can be invited; that person is not one."
        : "Only prime members can do that.";
    case "wrong_room_password":
      return "That room password is wrong.";
    case "not_room_member":
      return "You are not a member of that room.";
    case "not_participant":
      return "You can only send a friend request to someone who shares a room with you.";
    case "invite_invalid":
      return "This invitation link does not work: it has expired, was already used, or was made for another account.";
    case "forbidden":
      return context === "invite" ? "Only the room's owner can invite people." : "You are not allowed to do that.";
    case "not_found":
      if (context === "join") return "There is no room with that ID.";
      if (context === "user" || context === "invite") return "There is no user with that ID.";
      return "That no longer exists.";
    case "room_full":
      return "This room is full: it already has 6 members.";
    case "request_exists":
      return "You have already sent them a friend request.";
    case "already_friends":
      return "You are already friends.";
    case "payload_too_large":
      return "That is too long to send.";
    case "rate_limited":
      return `Too many tries in a short time. Wait ${seconds(err.retryAfter || 1)} and try again.`;
    case "overloaded":
      return `The server is too busy right now. Try again in ${seconds(err.retryAfter || 1)}.`;
    case "unavailable":
      return "The server cannot reach its database right now. Try again in a moment.";
    case "internal":
      return "Something went wrong on the server. Try again.";
    default:
      return err.message || "Something went wrong. Try again.";
  }
}
