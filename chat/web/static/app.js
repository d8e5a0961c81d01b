// The chat client: views, rooms, messages, friends and account.
// Everything a person or the server wrote is put on the page as text
// (textContent / append of strings), never parsed as HTML.

import * as api from "./api.js";
import { Live } from "./live.js";

const $ = (id) => document.getElementById(id);
const JOIN_PRICE = Number(document.querySelector('meta[name="chat-join-price"]').content) || 0;
const PAGE = 50;
const INVITE_KEY = "chat.pendingInvite";
const ROOM_KEY = "chat.openRoom";

let me = null;
let current = null; // roomId shown
const rooms = new Map(); // roomId -> room state
const names = new Map(); // userId -> display name
const outbox = new Map(); // clientMsgId -> pending message
let friendIds = new Set();
let lastTypingSent = 0;

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else if (value !== false && value != null) el.setAttribute(key, String(value));
  }
  el.append(...children.filter((c) => c != null));
  return el;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const when = (iso) => new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// -- notices and announcements ------------------------------------------------

let noticeTimer = 0;
function notice(text, kind = "info") {
  const el = $("notice");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
  clearTimeout(noticeTimer);
  if (text && kind === "info") noticeTimer = setTimeout(() => (el.hidden = true), 12000);
}

function announce(text) {
  const el = $("announcer");
  el.textContent = "";
  // A fresh text node in a live region is read out once.
  requestAnimationFrame(() => (el.textContent = text));
}

function formError(form, text) {
  const el = form.querySelector(".form-error");
  el.textContent = text || "";
}

async function busy(form, work) {
  const buttons = form.querySelectorAll("button[type=submit]");
  buttons.forEach((b) => (b.disabled = true));
  formError(form, "");
  try {
    return await work();
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

function valid(form) {
  if (form.checkValidity()) return true;
  form.reportValidity();
  return false;
}

// -- names ---------------------------------------------------------------------

function nameOf(userId) {
  return names.get(userId) || userId;
}

const pendingNames = new Set();
function learnName(userId) {
  if (names.has(userId) || pendingNames.has(userId)) return;
  pendingNames.add(userId);
  api
    .call("GET", "/api/profile/" + encodeURIComponent(userId))
    .then((data) => {
      names.set(userId, data.user.name);
      for (const el of document.querySelectorAll(`[data-user="${CSS.escape(userId)}"]`)) {
        el.textContent = data.user.name;
        el.title = userId;
      }
      if (current) renderTyping(rooms.get(current));
    })
    .catch(() => {})
    .finally(() => pendingNames.delete(userId));
}

function userLabel(userId, tag = "span") {
  learnName(userId);
  return h(tag, { class: "who", "data-user": userId, title: userId, text: nameOf(userId) });
}

// -- views ---------------------------------------------------------------------

const VIEWS = ["auth", "rooms", "friends", "account"];

function showView(name, focus = true) {
  for (const view of VIEWS) $(view + "-view").hidden = view !== name;
  for (const view of ["rooms", "friends", "account"]) {
    const button = $("nav-" + view);
    if (view === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  const signedIn = name !== "auth";
  $("nav").hidden = $("me").hidden = $("conn").hidden = !signedIn;
  if (name === "friends") loadFriends();
  if (name === "account") loadAccount();
  if (focus) {
    const heading = $(name + "-view").querySelector("h2");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }
}

function renderMe() {
  if (!me || !("availCoins" in me)) return;
  const el = $("me");
  el.replaceChildren(
    h("span", { class: "me-name", text: me.name }),
    " · ",
    h("span", { id: "coins", text: plural(me.availCoins, "coin") }),
  );
  if (me.isPrime) el.append(h("span", { class: "badge", text: "prime" }));
  $("new-room-btn").hidden = !me.isPrime;
  $("new-room-hint").hidden = me.isPrime;
  names.set(me.userId, me.name);
}

async function refreshMe() {
  const data = await api.call("GET", "/api/profile/" + encodeURIComponent(me.userId));
  me = data.user;
  renderMe();
}

// -- connection ------------------------------------------------------------------

const live = new Live({
  token: () => api.freshAccess(),
  renew: () => api.refresh(),
  ready: onReady,
  frame: onFrame,
  state: showConnection,
});

function showConnection(state, seconds) {
  const el = $("conn");
  el.dataset.state = state;
  const text = {
    idle: "Not connected",
    connecting: "Connecting…",
    online: "Connected",
    offline: "Offline. New messages will appear when you are back online.",
    waiting: `Connection lost. Retrying in ${seconds} s.`,
  }[state];
  el.textContent = text;
  const retry = state === "waiting";
  if (retry) el.append(" ", h("button", { type: "button", class: "link", onclick: () => live.retryNow(), text: "Retry now" }));
  for (const o of outbox.values()) if (!o.failed) o.status.textContent = state === "online" ? "Sending…" : "Waiting for the connection…";
}

function onReady() {
  for (const rs of rooms.values()) subscribe(rs);
  for (const id of outbox.keys()) flush(id);
}

function subscribe(rs) {
  const frame = { type: "subscribe", roomId: rs.room.roomId, ref: "sub:" + rs.room.roomId };
  if (rs.loaded) frame.after = rs.lastSeq;
  live.send(frame);
}

function onFrame(frame) {
  switch (frame.type) {
    case "message":
      return receive(frame.message);
    case "ack":
      return receive(frame.message);
    case "typing":
      return typing(frame.roomId, frame.userId);
    case "member_joined":
    case "member_left":
      return memberEvent(frame);
    case "error":
      return frameError(frame);
    default:
      return undefined;
  }
}

function frameError(frame) {
  const err = new api.ApiError(0, frame.code, frame.message, {}, frame.retryAfter || 0);
  const ref = frame.ref || "";
  const pending = outbox.get(ref);
  if (pending) {
    if (frame.code === "rate_limited" || frame.code === "overloaded" || frame.code === "unavailable") {
      const wait = Math.max(1, err.retryAfter || 2);
      pending.status.textContent = `${api.describe(err)} Sending again in ${wait} s.`;
      pending.timer = setTimeout(() => flush(ref), wait * 1000);
    } else {
      failPending(pending, api.describe(err));
    }
    return;
  }
  if (ref.startsWith("sub:") && frame.code === "not_room_member") {
    removeRoom(ref.slice(4));
    return;
  }
  if (frame.code !== "rate_limited" || !ref.startsWith("typing")) notice(api.describe(err), "error");
}

// -- rooms -----------------------------------------------------------------------

function roomState(room) {
  let rs = rooms.get(room.roomId);
  if (rs) {
    rs.room = room;
    return rs;
  }
  rs = {
    room,
    list: h("ol", { class: "messages", "aria-label": "Messages in " + room.name }),
    pending: h("ol", { class: "messages pending", "aria-label": "Messages being sent" }),
    bySeq: new Map(),
    firstSeq: Infinity,
    lastSeq: 0,
    hasMore: false,
    loaded: false,
    loading: null,
    unread: 0,
    typing: new Map(),
  };
  rooms.set(room.roomId, rs);
  return rs;
}

function addRoom(room) {
  const isNew = !rooms.has(room.roomId);
  const rs = roomState(room);
  if (isNew) subscribe(rs);
  renderRoomList();
  return rs;
}

function removeRoom(roomId) {
  rooms.delete(roomId);
  live.send({ type: "unsubscribe", roomId });
  if (current === roomId) closeRoom();
  renderRoomList();
}

async function loadRooms() {
  const data = await api.call("GET", "/api/chatrooms");
  const seen = new Set();
  for (const room of data.rooms) {
    seen.add(room.roomId);
    addRoom(room);
  }
  for (const roomId of [...rooms.keys()]) if (!seen.has(roomId)) removeRoom(roomId);
  renderRoomList();
}

function renderRoomList() {
  const list = $("room-list");
  const sorted = [...rooms.values()].sort((a, b) => a.room.name.localeCompare(b.room.name));
  list.replaceChildren(
    ...sorted.map((rs) => {
      const { room } = rs;
      const button = h(
        "button",
        { type: "button", class: "room-item", onclick: () => openRoom(room.roomId) },
        h("span", { class: "room-name", text: room.name }),
        h("span", { class: "hint", text: ` ${room.memberCount}/${room.capacity}` }),
      );
      if (rs.unread) button.append(h("span", { class: "unread", text: plural(rs.unread, "new message") }));
      if (room.roomId === current) button.setAttribute("aria-current", "true");
      return h("li", {}, button);
    }),
  );
  $("no-rooms").hidden = rooms.size > 0;
}

function openRoom(roomId) {
  const rs = rooms.get(roomId);
  if (!rs) return;
  current = roomId;
  sessionStorage.setItem(ROOM_KEY, roomId);
  rs.unread = 0;
  $("room-pane").hidden = false;
  $("no-room").hidden = true;
  $("rooms-view").classList.add("room-open");
  renderRoomHead(rs);
  $("log-lists").replaceChildren(rs.list, rs.pending);
  renderTyping(rs);
  renderRoomList();
  $("composer-status").textContent = "";
  if (!rs.loaded) loadLatest(rs);
  else {
    $("older-btn").hidden = !rs.hasMore;
    scrollToEnd();
  }
  $("composer-input").focus();
}

function closeRoom() {
  current = null;
  sessionStorage.removeItem(ROOM_KEY);
  $("room-pane").hidden = true;
  $("no-room").hidden = false;
  $("rooms-view").classList.remove("room-open");
  renderRoomList();
}

function renderRoomHead(rs) {
  const { room } = rs;
  $("room-title").textContent = room.name;
  $("room-id").textContent = `Room ID: ${room.roomId} · ${room.memberCount} of ${room.capacity} members`;
  const owner = room.ownerId === me.userId;
  $("invite-btn").hidden = !owner;
  $("leave-btn").hidden = owner;
  $("member-list").replaceChildren(
    ...room.members.map((userId) =>
      h(
        "li",
        {},
        h("button", { type: "button", class: "link", onclick: () => showProfile(userId) }, userLabel(userId)),
        userId === room.ownerId ? h("span", { class: "hint", text: " (owner)" }) : null,
        userId === me.userId ? h("span", { class: "hint", text: " (you)" }) : null,
      ),
    ),
  );
}

function memberEvent(frame) {
  const rs = rooms.get(frame.roomId);
  if (!rs) return;
  const members = new Set(rs.room.members);
  if (frame.type === "member_joined") members.add(frame.userId);
  else members.delete(frame.userId);
  rs.room.members = [...members];
  rs.room.memberCount = members.size;
  if (frame.type === "member_left" && frame.userId === me.userId) return removeRoom(frame.roomId);
  if (current === frame.roomId) {
    renderRoomHead(rs);
    const verb = frame.type === "member_joined" ? "joined" : "left";
    announce(`${nameOf(frame.userId)} ${verb} ${rs.room.name}.`);
  }
  renderRoomList();
}

// -- messages ----------------------------------------------------------------------

function nearEnd() {
  const log = $("log");
  return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
}

function scrollToEnd() {
  const log = $("log");
  log.scrollTop = log.scrollHeight;
}

function messageItem(m) {
  const mine = m.senderId === me.userId;
  return h(
    "li",
    { class: mine ? "msg mine" : "msg", "data-seq": m.seq },
    h("div", { class: "msg-head" }, userLabel(m.senderId), h("time", { datetime: m.createdAt, text: clock(m.createdAt) })),
    h("p", { class: "body", text: m.content }),
  );
}

// Puts a message in its room in seq order; false when it was already there.
function insertMessage(rs, m) {
  if (rs.bySeq.has(m.seq)) return false;
  const li = messageItem(m);
  rs.bySeq.set(m.seq, li);
  let before = null;
  for (let el = rs.list.lastElementChild; el; el = el.previousElementSibling) {
    if (Number(el.dataset.seq) < m.seq) {
      before = el;
      break;
    }
  }
  if (before) before.after(li);
  else rs.list.prepend(li);
  rs.firstSeq = Math.min(rs.firstSeq, m.seq);
  rs.lastSeq = Math.max(rs.lastSeq, m.seq);
  return true;
}

function receive(m) {
  const pending = m.clientMsgId && outbox.get(m.clientMsgId);
  if (pending && m.senderId === me.userId) {
    clearTimeout(pending.timer);
    pending.li.remove();
    outbox.delete(m.clientMsgId);
  }
  const rs = rooms.get(m.roomId);
  if (!rs) return;
  rs.typing.delete(m.senderId);
  if (!rs.loaded) {
    if (m.senderId !== me.userId && m.seq > rs.lastSeq) {
      rs.unread += 1;
      rs.lastSeq = m.seq;
      renderRoomList();
    }
    return;
  }
  const gap = m.seq > rs.lastSeq + 1;
  const stick = current === m.roomId && nearEnd();
  if (!insertMessage(rs, m)) return;
  if (gap) fillGap(rs);
  if (current === m.roomId) {
    renderTyping(rs);
    if (stick || m.senderId === me.userId) scrollToEnd();
    if (m.senderId !== me.userId) announce(`${nameOf(m.senderId)}: ${m.content}`);
  } else if (m.senderId !== me.userId) {
    rs.unread += 1;
    renderRoomList();
  }
}

async function fetchMessages(rs, params) {
  const query = new URLSearchParams({ roomId: rs.room.roomId, limit: String(PAGE), ...params });
  return api.call("GET", "/api/messages?" + query);
}

async function loadLatest(rs) {
  if (rs.loading) return rs.loading;
  rs.loading = (async () => {
    try {
      const data = await fetchMessages(rs, {});
      rs.unread = 0;
      rs.lastSeq = 0;
      for (const m of data.messages) insertMessage(rs, m);
      rs.hasMore = data.hasMore;
      rs.loaded = true;
      if (current === rs.room.roomId) {
        $("older-btn").hidden = !rs.hasMore;
        scrollToEnd();
      }
      // Anything stored since the page came back in is asked for by seq.
      if (live.isReady) live.send({ type: "subscribe", roomId: rs.room.roomId, after: rs.lastSeq, ref: "sub:" + rs.room.roomId });
    } catch (err) {
      notice(api.describe(err), "error");
    } finally {
      rs.loading = null;
    }
  })();
  return rs.loading;
}

async function loadOlder() {
  const rs = rooms.get(current);
  if (!rs || !rs.loaded) return;
  const log = $("log");
  const fromEnd = log.scrollHeight - log.scrollTop;
  try {
    const data = await fetchMessages(rs, { before: String(rs.firstSeq) });
    for (const m of data.messages) insertMessage(rs, m);
    rs.hasMore = data.hasMore;
    $("older-btn").hidden = !rs.hasMore;
    log.scrollTop = log.scrollHeight - fromEnd;
    announce(`${plural(data.messages.length, "earlier message")} loaded.`);
    if (!rs.hasMore) log.focus();
  } catch (err) {
    notice(api.describe(err), "error");
  }
}

async function fillGap(rs) {
  try {
    let after = [...rs.bySeq.keys()].sort((a, b) => a - b).find((seq, i, all) => all[i + 1] && all[i + 1] !== seq + 1);
    while (after !== undefined) {
      const data = await fetchMessages(rs, { after: String(after), limit: "200" });
      for (const m of data.messages) insertMessage(rs, m);
      after = data.hasMore ? data.messages[data.messages.length - 1].seq : undefined;
    }
  } catch {
    // the next reconnect asks again with "after"
  }
}

function sendMessage(content) {
  const rs = rooms.get(current);
  if (!rs) return;
  const clientMsgId = api.randomId();
  const status = h("span", { class: "hint" });
  const li = h(
    "li",
    { class: "msg mine sending" },
    h("div", { class: "msg-head" }, h("span", { class: "who", text: me.name }), status),
    h("p", { class: "body", text: content }),
  );
  rs.pending.append(li);
  outbox.set(clientMsgId, { roomId: rs.room.roomId, content, li, status, timer: 0, failed: false });
  flush(clientMsgId);
  scrollToEnd();
}

function flush(clientMsgId) {
  const o = outbox.get(clientMsgId);
  if (!o || o.failed) return;
  const frame = { type: "message", roomId: o.roomId, content: o.content, clientMsgId, ref: clientMsgId };
  o.status.textContent = live.send(frame) ? "Sending…" : "Waiting for the connection…";
}

function failPending(o, text) {
  o.failed = true;
  o.li.classList.add("failed");
  o.status.textContent = "Not sent: " + text;
  o.li.append(
    h("button", {
      type: "button",
      class: "link",
      text: "Dismiss",
      onclick: () => {
        o.li.remove();
        for (const [id, item] of outbox) if (item === o) outbox.delete(id);
        $("composer-input").focus();
      },
    }),
  );
}

function typing(roomId, userId) {
  const rs = rooms.get(roomId);
  if (!rs || userId === me.userId) return;
  clearTimeout(rs.typing.get(userId));
  rs.typing.set(
    userId,
    setTimeout(() => {
      rs.typing.delete(userId);
      if (current === roomId) renderTyping(rs);
    }, 5000),
  );
  if (current === roomId) renderTyping(rs);
}

function renderTyping(rs) {
  if (!rs) return;
  const who = [...rs.typing.keys()].map(nameOf);
  $("typing").textContent = !who.length
    ? ""
    : who.length === 1
      ? `${who[0]} is typing…`
      : `${who.slice(0, -1).join(", ")} and ${who[who.length - 1]} are typing…`;
}

// -- joining, creating, inviting, leaving -------------------------------------------

function priceOfJoin() {
  if (me.isPrime) return { price: 0, why: "Joining is free: prime members join free." };
  if (!me.freeJoinUsed) return { price: 0, why: "Joining is free: your first room is free." };
  return { price: JOIN_PRICE, why: "" };
}

function describePrice() {
  const { price, why } = priceOfJoin();
  if (!price) return { price, enough: true, text: why };
  const have = me.availCoins;
  if (have < price)
    return { price, enough: false, text: `This room costs ${price} coins; you have ${have}. You need ${price - have} more coins to join.` };
  return { price, enough: true, text: `This room costs ${price} coins; you have ${have}. You will have ${have - price} left.` };
}

let joinInvite = null;

async function openJoin(inviteToken = null) {
  joinInvite = inviteToken;
  const form = $("join-form");
  form.reset();
  formError(form, "");
  $("join-title").textContent = inviteToken ? "Join by invitation" : "Join a room";
  $("join-fields").hidden = !!inviteToken;
  $("join-id").required = $("join-password").required = !inviteToken;
  $("join-price").textContent = "Checking your balance…";
  $("join-dialog").showModal();
  try {
    await refreshMe();
  } catch (err) {
    formError(form, api.describe(err));
  }
  const { price, enough, text } = describePrice();
  $("join-price").textContent = (inviteToken ? "You have been invited to a room. " : "") + text;
  const submit = $("join-submit");
  submit.textContent = price ? `Pay ${price} coins and join` : "Join";
  submit.disabled = !enough;
}

async function submitJoin(event) {
  event.preventDefault();
  const form = event.target;
  if (!valid(form)) return;
  const roomId = $("join-id").value.trim();
  if (!joinInvite && rooms.has(roomId)) {
    $("join-dialog").close();
    openRoom(roomId);
    notice("You are already in this room.");
    return;
  }
  await busy(form, async () => {
    try {
      const body = joinInvite ? { inviteToken: joinInvite } : { roomId, password: $("join-password").value };
      const data = await api.call("POST", "/api/joinroom", body);
      joinInvite = null;
      me.availCoins = data.availCoins;
      if (!me.isPrime) me.freeJoinUsed = true;
      renderMe();
      $("join-dialog").close();
      addRoom(data.room);
      openRoom(data.room.roomId);
      const paid = data.charged ? `You paid ${data.charged} coins` : "It was free";
      notice(`You joined ${data.room.name}. ${paid}; you now have ${plural(data.availCoins, "coin")}.`);
    } catch (err) {
      formError(form, api.describe(err, "join"));
      if (err.code === "insufficient_coins") $("join-submit").disabled = true;
    }
  });
}

function captureInvite() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("invite");
  if (!token) return;
  // The token came in the fragment (never sent to the server); keep it out of
  // the address bar and history, in this tab's storage until it is used.
  sessionStorage.setItem(INVITE_KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
}

function usePendingInvite() {
  const token = sessionStorage.getItem(INVITE_KEY);
  if (!token || !me) return;
  sessionStorage.removeItem(INVITE_KEY);
  showView("rooms", false);
  openJoin(token);
}

async function submitCreate(event) {
  event.preventDefault();
  const form = event.target;
  if (!valid(form)) return;
  await busy(form, async () => {
    try {
      const data = await api.call("POST", "/api/chatrooms", { name: $("create-name").value.trim(), password: $("create-password").value });
      $("create-dialog").close();
      addRoom(data.room);
      rooms.get(data.room.roomId).loaded = false;
      openRoom(data.room.roomId);
      notice(`Room ${data.room.name} created. Share its ID and password, or invite prime members.`);
    } catch (err) {
      formError(form, api.describe(err));
    }
  });
}

async function submitInvite(event) {
  event.preventDefault();
  const form = event.target;
  if (!valid(form)) return;
  await busy(form, async () => {
    try {
      const data = await api.call("POST", "/api/invite", { roomId: current, userId: $("invite-user").value.trim() });
      const inv = data.invitation;
      $("invite-link").value = `${location.origin}/#invite=${encodeURIComponent(inv.token)}`;
      $("invite-info").textContent = `Works once, only for ${inv.inviteeId}, until ${when(inv.expiresAt)}. Send it to them privately.`;
      $("copy-status").textContent = "";
      $("invite-result").hidden = false;
      $("copy-btn").focus();
    } catch (err) {
      formError(form, api.describe(err, "invite"));
    }
  });
}

async function copyLink() {
  const input = $("invite-link");
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    $("copy-status").textContent = "Copied.";
  } catch {
    $("copy-status").textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
  }
}

function confirmThen(title, text, okText, action) {
  const form = $("confirm-form");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okText;
  formError(form, "");
  form.onsubmit = async (event) => {
    event.preventDefault();
    await busy(form, async () => {
      try {
        await action();
        $("confirm-dialog").close();
      } catch (err) {
        formError(form, api.describe(err));
      }
    });
  };
  $("confirm-dialog").showModal();
}

function leaveRoom() {
  const rs = rooms.get(current);
  if (!rs) return;
  confirmThen("Leave room?", `Leave ${rs.room.name}? Coins paid to join are not refunded.`, "Leave room", async () => {
    await api.call("POST", `/api/chatrooms/${encodeURIComponent(rs.room.roomId)}/leave`);
    removeRoom(rs.room.roomId);
    notice(`You left ${rs.room.name}.`);
    $("rooms-title").focus();
  });
}

// -- profiles and friends ---------------------------------------------------------

let profileShown = null;

async function showProfile(userId) {
  profileShown = userId;
  const form = $("profile-form");
  formError(form, "");
  $("profile-status").textContent = "";
  $("profile-body").replaceChildren(h("dd", { text: "Loading…" }));
  $("befriend-btn").hidden = true;
  $("profile-dialog").showModal();
  try {
    const { user } = await api.call("GET", "/api/profile/" + encodeURIComponent(userId));
    names.set(user.userId, user.name);
    $("profile-body").replaceChildren(...profileRows(user));
    $("befriend-btn").hidden = user.userId === me.userId || friendIds.has(user.userId);
    if (friendIds.has(user.userId)) $("profile-status").textContent = "You are friends.";
  } catch (err) {
    $("profile-body").replaceChildren();
    formError(form, api.describe(err, "user"));
  }
}

function profileRows(user) {
  const rows = [
    ["Name", user.name],
    ["User ID", user.userId],
    ["Prime member", user.isPrime ? "Yes" : "No"],
    ["Member since", when(user.createdAt)],
  ];
  if ("availCoins" in user) {
    rows.push(["Phone", user.phone], ["Coins", String(user.availCoins)]);
    rows.push(["Free first room", user.freeJoinUsed ? "Used" : "Not used yet"]);
  }
  return rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]);
}

async function sendFriendRequest(userId) {
  const data = await api.call("POST", "/api/friend-requests", { userId });
  if (!names.has(userId)) {
    await api
      .call("GET", "/api/profile/" + encodeURIComponent(userId))
      .then((d) => names.set(userId, d.user.name))
      .catch(() => {});
  }
  if (data.friendRequest.status === "accepted") {
    friendIds.add(userId);
    return `You and ${nameOf(userId)} are now friends.`;
  }
  return `Friend request sent to ${nameOf(userId)}.`;
}

async function submitBefriend(event) {
  event.preventDefault();
  const form = event.target;
  await busy(form, async () => {
    try {
      $("profile-status").textContent = await sendFriendRequest(profileShown);
      $("befriend-btn").hidden = true;
    } catch (err) {
      formError(form, api.describe(err, "user"));
    }
  });
}

async function submitFriend(event) {
  event.preventDefault();
  const form = event.target;
  if (!valid(form)) return;
  await busy(form, async () => {
    try {
      notice(await sendFriendRequest($("friend-id").value.trim()));
      form.reset();
      loadFriends();
    } catch (err) {
      formError(form, api.describe(err, "user"));
    }
  });
}

function personItem(userId, ...actions) {
  return h(
    "li",
    {},
    h("button", { type: "button", class: "link", onclick: () => showProfile(userId) }, userLabel(userId)),
    h("span", { class: "row" }, ...actions),
  );
}

function requestAction(label, method, path, done) {
  return h("button", {
    type: "button",
    text: label,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        await api.call(method, path);
        notice(done);
      } catch (err) {
        notice(api.describe(err), "error");
      }
      await loadFriends();
      $("friends-title").focus();
    },
  });
}

async function loadFriends() {
  try {
    const [friends, incoming, outgoing] = await Promise.all([
      api.call("GET", "/api/friends"),
      api.call("GET", "/api/friend-requests?direction=incoming&status=pending"),
      api.call("GET", "/api/friend-requests?direction=outgoing&status=pending"),
    ]);
    for (const f of friends.friends) names.set(f.userId, f.name);
    friendIds = new Set(friends.friends.map((f) => f.userId));
    const empty = (text) => h("li", { class: "hint", text });
    const path = (r, tail = "") => `/api/friend-requests/${encodeURIComponent(r.requestId)}${tail}`;
    $("incoming-list").replaceChildren(
      ...incoming.friendRequests.map((r) =>
        personItem(
          r.fromUserId,
          requestAction("Accept", "POST", path(r, "/accept"), `You and ${nameOf(r.fromUserId)} are now friends.`),
          requestAction("Decline", "POST", path(r, "/decline"), "Request declined."),
        ),
      ),
    );
    if (!incoming.friendRequests.length) $("incoming-list").append(empty("None."));
    $("outgoing-list").replaceChildren(
      ...outgoing.friendRequests.map((r) => personItem(r.toUserId, requestAction("Withdraw", "DELETE", path(r), "Request withdrawn."))),
    );
    if (!outgoing.friendRequests.length) $("outgoing-list").append(empty("None."));
    $("friend-list").replaceChildren(...friends.friends.map((f) => personItem(f.userId)));
    if (!friends.friends.length) $("friend-list").append(empty("No friends yet."));
  } catch (err) {
    notice(api.describe(err), "error");
  }
}

// -- account ---------------------------------------------------------------------------

async function loadAccount() {
  try {
    await refreshMe();
    $("my-profile").replaceChildren(...profileRows(me));
  } catch (err) {
    notice(api.describe(err), "error");
  }
  loadSessions();
}

async function loadSessions() {
  const list = $("session-list");
  try {
    const { sessions } = await api.call("GET", "/api/sessions");
    list.replaceChildren(
      ...sessions.map((s) =>
        h(
          "li",
          {},
          h(
            "span",
            {},
            h("strong", { text: s.deviceId || "Unknown device" }),
            s.current ? h("span", { class: "badge", text: "this browser" }) : null,
            h("span", { class: "hint", text: ` since ${when(s.createdAt)}, last used ${when(s.lastUsedAt)}` }),
          ),
          s.current
            ? h("button", { type: "button", text: "Sign out", onclick: signOut })
            : h("button", {
                type: "button",
                text: "End session",
                "aria-label": `End the session on ${s.deviceId}`,
                onclick: async (event) => {
                  event.target.disabled = true;
                  try {
                    await api.call("DELETE", "/api/sessions/" + encodeURIComponent(s.sessionId));
                    notice(`Signed out ${s.deviceId}.`);
                  } catch (err) {
                    notice(api.describe(err), "error");
                  }
                  await loadSessions();
                  $("sessions-title").tabIndex = -1;
                  $("sessions-title").focus();
                },
              }),
        ),
      ),
    );
  } catch (err) {
    list.replaceChildren(h("li", { class: "hint", text: api.describe(err) }));
  }
}

async function submitPassword(event) {
  event.preventDefault();
  const form = event.target;
  if (!valid(form)) return;
  await busy(form, async () => {
    try {
      await api.call("POST", "/api/password", { currentPassword: $("pw-current").value, newPassword: $("pw-new").value });
      form.reset();
      notice("Password changed. Every other session was signed out.");
      loadSessions();
    } catch (err) {
      formError(form, api.describe(err, "password"));
    }
  });
}

// -- signing in and out -----------------------------------------------------------------

function resetState() {
  live.stop();
  me = null;
  current = null;
  rooms.clear();
  outbox.clear();
  friendIds = new Set();
  $("room-list").replaceChildren();
  $("room-pane").hidden = true;
  $("rooms-view").classList.remove("room-open");
}

function signedOut(message) {
  resetState();
  sessionStorage.removeItem(ROOM_KEY);
  showView("auth");
  if (message) notice(message, "error");
}

async function signOut() {
  try {
    await api.logout();
  } catch {
    // signed out locally either way
  }
  resetState();
  sessionStorage.removeItem(ROOM_KEY);
  showView("auth");
  notice("You are signed out.");
}

async function enterApp() {
  showView("rooms");
  renderMe();
  await loadRooms();
  live.start();
  api
    .call("GET", "/api/friends")
    .then((d) => (friendIds = new Set(d.friends.map((f) => f.userId))))
    .catch(() => {});
  const last = sessionStorage.getItem(ROOM_KEY);
  if (last && rooms.has(last)) openRoom(last);
  usePendingInvite();
}

async function submitLogin(event) {
  event.preventDefault();
  const form = event.target;
  if (!valid(form)) return;
  await busy(form, async () => {
    try {
      await api.login($("login-id").value.trim(), $("login-password").value, $("login-keep").checked);
      form.reset();
      notice("");
      await enterApp();
    } catch (err) {
      formError(form, api.describe(err));
    }
  });
}

async function submitRegister(event) {
  event.preventDefault();
  const form = event.target;
  if (!valid(form)) return;
  await busy(form, async () => {
    const fields = {
      userId: $("reg-id").value.trim(),
      name: $("reg-name").value.trim(),
      phone: $("reg-phone").value.trim(),
      password: $("reg-password").value,
    };
    try {
      await api.register(fields);
      await api.login(fields.userId, fields.password, true);
      form.reset();
      await enterApp();
      notice(`Welcome, ${me.name}! Join a room with its ID and password, or open an invitation link.`);
    } catch (err) {
      formError(form, api.describe(err));
    }
  });
}

// -- wiring ----------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", submitLogin);
  $("register-form").addEventListener("submit", submitRegister);
  $("nav-rooms").addEventListener("click", () => showView("rooms"));
  $("nav-friends").addEventListener("click", () => showView("friends"));
  $("nav-account").addEventListener("click", () => showView("account"));
  $("new-room-btn").addEventListener("click", () => {
    $("create-form").reset();
    formError($("create-form"), "");
    $("create-dialog").showModal();
  });
  $("join-room-btn").addEventListener("click", () => openJoin());
  $("create-form").addEventListener("submit", submitCreate);
  $("join-form").addEventListener("submit", submitJoin);
  $("invite-form").addEventListener("submit", submitInvite);
  $("profile-form").addEventListener("submit", submitBefriend);
  $("friend-form").addEventListener("submit", submitFriend);
  $("password-form").addEventListener("submit", submitPassword);
  $("copy-btn").addEventListener("click", copyLink);
  $("logout-btn").addEventListener("click", signOut);
  $("back-btn").addEventListener("click", () => {
    closeRoom();
    $("rooms-title").tabIndex = -1;
    $("rooms-title").focus();
  });
  $("older-btn").addEventListener("click", loadOlder);
  $("leave-btn").addEventListener("click", leaveRoom);
  $("invite-btn").addEventListener("click", () => {
    $("invite-form").reset();
    formError($("invite-form"), "");
    $("invite-result").hidden = true;
    $("invite-dialog").showModal();
  });
  $("members-btn").addEventListener("click", () => {
    const open = $("members").hidden;
    $("members").hidden = !open;
    $("members-btn").setAttribute("aria-expanded", String(open));
  });
  for (const button of document.querySelectorAll("dialog .cancel")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  const input = $("composer-input");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    const now = Date.now();
    if (current && input.value && now - lastTypingSent > 3000) {
      lastTypingSent = now;
      live.send({ type: "typing", roomId: current, ref: "typing" });
    }
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    if (content.length > 4000) {
      $("composer-status").textContent = "A message can be at most 4000 characters.";
      return;
    }
    input.value = "";
    lastTypingSent = 0;
    $("composer-status").textContent = "";
    sendMessage(content);
  });
  window.addEventListener("hashchange", () => {
    captureInvite();
    usePendingInvite();
  });
}

async function start() {
  wire();
  captureInvite();
  api.configure({
    onSession: (user) => {
      // A refresh may name the user only; keep what the page knew.
      me = me && me.userId === user.userId ? { ...me, ...user } : user;
      renderMe();
    },
    onSignedOut: signedOut,
  });
  if (!api.hasSession()) {
    showView("auth", false);
    if (sessionStorage.getItem(INVITE_KEY)) notice("Sign in to accept the invitation.");
    return;
  }
  try {
    await api.refresh();
    if (!("availCoins" in me)) await refreshMe();
    await enterApp();
  } catch (err) {
    showView("auth", false);
    if (err.code !== "unauthorized") notice(api.describe(err), "error");
  }
}

start();
