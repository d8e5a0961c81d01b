"""The web client at ``/``, driven in a real browser (Debian's Chromium through Playwright).

Each person is a browser context of their own (separate storage, as separate
devices), talking to a real ``server.py`` over real HTTP and WebSockets.
Every page records its console; a test ends by checking that nothing was
logged as an error or a warning. Screenshots of the main screens go to
``test-artifacts/screens/`` (not committed; a few are copied into docs/).
"""

import json
import os
import re
import secrets
import time
import urllib.error
import urllib.request

import jwt
import pytest
from playwright.sync_api import Browser, Page, expect

from helpers import PASSWORD, ROOT, TEST_SECRET

SCREENS = os.path.join(ROOT, "test-artifacts", "screens")
DESKTOP = {"width": 1100, "height": 720}
PHONE = {"width": 360, "height": 740}
HOSTILE = [
    '<img src=x onerror="window.__pwned=1">',
    "</script><script>window.__pwned=2</script>",
]

expect.set_options(timeout=10_000)


# -- the API, as an operator and a second device would use it -----------------


def call(server, method, path, body=None, token=None, admin=False):
    """(status, parsed body) of one HTTP request to ``server``."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    if admin:
        headers["X-Admin-Key"] = server.admin_key
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def new_user(server, prime=False, coins=0, name=None):
    """A registered user (prime and coins granted by the operator); a dict of its fields."""
    user_id = "w_" + secrets.token_hex(5)
    user = {
        "userId": user_id,
        "name": name or user_id,
        "phone": "+1" + str(secrets.randbelow(10**12)).zfill(12),
        "password": PASSWORD,
        "deviceId": "api",
    }
    status, body = call(server, "POST", "/api/create", user)
    assert status == 201, body
    grant(server, user_id, prime=prime, coins=coins)
    return user


def grant(server, user_id, prime=False, coins=0):
    grants = {}
    if prime:
        grants["isPrime"] = True
    if coins:
        grants["coins"] = coins
    if grants:
        status, body = call(
            server, "POST", f"/api/admin/users/{user_id}/grants", grants, admin=True
        )
        assert status == 200, body


def token_of(server, user):
    status, body = call(
        server, "POST", "/api/login", {"userId": user["userId"], "password": PASSWORD}
    )
    assert status == 200, body
    return body["token"]


# -- a person in a browser ----------------------------------------------------

UNLABELLED = """() => [...document.querySelectorAll("input, textarea, select, button")]
    .filter((el) => {
        const label = [...(el.labels || [])].map((l) => l.textContent).join("")
            || el.getAttribute("aria-label")
            || (el.tagName === "BUTTON" ? el.textContent : "");
        return !label.trim();
    })
    .map((el) => el.id || el.outerHTML.slice(0, 80))"""


class Person:
    """One browser context (one device) with its page, its console and its requests."""

    def __init__(self, browser: Browser, server, viewport=None, scheme="light"):
        self.server = server
        self.context = browser.new_context(viewport=viewport or DESKTOP, color_scheme=scheme)
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.urls: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("request", lambda req: self.urls.append(req.url))
        self.page.on("websocket", lambda ws: self.urls.append(ws.url))
        self.refused: list[str] = []  # "status path" of every HTTP answer >= 400
        self.page.on("response", self._response)

    def _response(self, response):
        if response.status >= 400:
            self.refused.append(f"{response.status} {response.url.split('/', 3)[3]}")

    def _console(self, message):
        if message.type in ("error", "warning"):
            self.problems.append(f"{message.type}: {message.text}")

    def open(self, path="/"):
        self.page.goto(self.server.base_url + path)
        return self

    def sign_in(self, identifier, password=PASSWORD):
        page = self.page
        page.get_by_label("User ID or phone number").fill(identifier)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#conn")).to_have_text("Connected")
        return self

    def register(self, user_id, name, phone, password=PASSWORD):
        page = self.page
        form = page.locator("#register-form")
        form.get_by_label("User ID").fill(user_id)
        form.get_by_label("Display name").fill(name)
        form.get_by_label("Phone").fill(phone)
        form.get_by_label("Password").fill(password)
        form.get_by_role("button", name="Create account").click()
        expect(page.locator("#conn")).to_have_text("Connected")
        return self

    def open_room(self, name):
        self.page.locator("#room-list").get_by_role(
            "button", name=re.compile(re.escape(name))
        ).click()
        expect(self.page.locator("#room-title")).to_have_text(name)

    def say(self, text):
        box = self.page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")
        expect(self.sent().last).to_have_text(text)

    def sent(self):
        """The stored messages shown in the open room (not the ones still being sent)."""
        return self.page.locator("#log-lists ol.messages:not(.pending) .body")

    def texts(self):
        return self.sent().all_text_contents()

    def shot(self, name):
        os.makedirs(SCREENS, exist_ok=True)
        self.page.screenshot(path=os.path.join(SCREENS, name + ".png"))

    def assert_quiet(self, allowed=()):
        """No console error or warning, except ``allowed`` regular expressions."""
        left = [p for p in self.problems if not any(re.search(a, p) for a in allowed)]
        assert not left, (left, self.refused)

    def close(self):
        self.context.close()


@pytest.fixture
def people(browser, web_server):
    made = []

    def person(viewport=None, scheme="light"):
        made.append(Person(browser, web_server, viewport, scheme))
        return made[-1]

    yield person
    for p in made:
        p.close()


def create_room_in_ui(person, name, password):
    page = person.page
    page.get_by_role("button", name="New room").click()
    dialog = page.locator("#create-dialog")
    dialog.get_by_label("Room name").fill(name)
    dialog.get_by_label("Room password").fill(password)
    dialog.get_by_role("button", name="Create room").click()
    expect(page.locator("#room-title")).to_have_text(name)
    return page.locator("#room-id").inner_text().split()[2]


def join_in_ui(person, room_id, password):
    page = person.page
    page.get_by_role("button", name="Join a room").click()
    dialog = page.locator("#join-dialog")
    dialog.get_by_label("Room ID").fill(room_id)
    dialog.get_by_label("Room password").fill(password)
    return dialog


# -- the tests ------------------------------------------------------------------


def test_two_people_chat_join_by_password_and_by_invitation(people, web_server):
    alice_id, bob_id = "alice_" + secrets.token_hex(3), "bob_" + secrets.token_hex(3)
    alice_phone = "+44" + str(secrets.randbelow(10**10)).zfill(10)
    first_device, bob = people(), people()

    # Alice registers in the page, the operator makes her prime, and she signs
    # in on another device (by phone) to see it.
    first_device.open()
    expect(first_device.page.get_by_role("heading", name="Sign in")).to_be_visible()
    first_device.shot("sign-in")
    first_device.register(alice_id, "Alice", alice_phone)
    first_device.assert_quiet()
    grant(web_server, alice_id, prime=True)
    alice = people().open().sign_in(alice_phone)
    room_id = create_room_in_ui(alice, "Team room", "team-pass")

    # Bob registers and joins by room id and password: his first room is free.
    bob.open().register(bob_id, "Bob", "+1" + str(secrets.randbelow(10**12)).zfill(12))
    dialog = join_in_ui(bob, room_id, "team-pass")
    expect(dialog.locator("#join-price")).to_have_text("Joining is free: your first room is free.")
    dialog.get_by_role("button", name="Join").click()
    expect(bob.page.locator("#notice")).to_contain_text("You joined Team room. It was free")
    expect(bob.page.locator("#room-title")).to_have_text("Team room")

    # Alice's member list follows member_joined.
    alice.page.get_by_role("button", name="Members").click()
    expect(alice.page.locator("#member-list")).to_contain_text("Bob")

    # They chat both ways and see each other typing.
    alice.say("Hello Bob!")
    expect(bob.sent().last).to_have_text("Hello Bob!")
    bob.page.get_by_label("Message", exact=True).fill("typing a reply")
    expect(alice.page.locator("#typing")).to_have_text("Bob is typing…")
    bob.page.get_by_label("Message", exact=True).press("Enter")
    expect(alice.sent().last).to_have_text("typing a reply")
    expect(alice.page.locator("#announcer")).to_have_text("Bob: typing a reply")
    expect(alice.page.locator("#typing")).to_have_text("")
    alice.page.get_by_label("Message", exact=True).fill("and back")
    expect(bob.page.locator("#typing")).to_have_text("Alice is typing…")
    alice.page.get_by_label("Message", exact=True).press("Enter")
    expect(bob.sent().last).to_have_text("and back")

    # A hostile message is text on the other side, and runs nothing.
    for text in HOSTILE:
        bob.say(text)
        expect(alice.sent().last).to_have_text(text)
    assert alice.page.evaluate("window.__pwned") is None
    assert alice.page.locator("#log img").count() == 0
    alice.shot("room-desktop")

    # Bob becomes prime; Alice invites him to a second room with a link that
    # opens the client; the token travels in the fragment only.
    grant(web_server, bob_id, prime=True)
    create_room_in_ui(alice, "Inner circle", "inner-pass")
    alice.page.get_by_role("button", name="Invite").click()
    invite = alice.page.locator("#invite-dialog")
    invite.get_by_label("Their user ID").fill(bob_id)
    invite.get_by_role("button", name="Create link").click()
    link_box = invite.get_by_label("Invitation link")
    expect(link_box).to_have_value(re.compile("^" + re.escape(web_server.base_url + "/#invite=")))
    link = link_box.input_value()
    expect(invite.locator("#invite-info")).to_contain_text(f"only for {bob_id}")
    alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    invite.get_by_role("button", name="Copy link").click()
    expect(invite.locator("#copy-status")).to_have_text("Copied.")
    assert alice.page.evaluate("navigator.clipboard.readText()") == link
    alice.shot("invite")
    invite.get_by_role("button", name="Close").click()
    token = link.split("#invite=", 1)[1]

    bob.page.goto(link)
    dialog = bob.page.locator("#join-dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Join by invitation")
    expect(dialog.locator("#join-price")).to_contain_text("prime members join free")
    assert "#invite" not in bob.page.url
    dialog.get_by_role("button", name="Join").click()
    expect(bob.page.locator("#room-title")).to_have_text("Inner circle")
    assert not [u for u in bob.urls if token in u], "the invitation token was sent in a URL"

    bob.say("made it in")
    expect(alice.sent().last).to_have_text("made it in")

    # Bob's network drops while Alice keeps writing; when it returns every
    # message is there once, in order.
    bob.context.set_offline(True)
    expect(bob.page.locator("#conn")).to_contain_text("Offline")
    missed = [f"while you were away {n}" for n in range(1, 6)]
    for text in missed:
        alice.say(text)
    box = bob.page.get_by_label("Message", exact=True)
    box.fill("written offline")
    box.press("Enter")
    expect(bob.page.locator("ol.pending")).to_contain_text("Waiting for the connection")
    bob.shot("offline")
    bob.context.set_offline(False)
    expect(bob.page.locator("#conn")).to_have_text("Connected")
    expect(bob.sent().last).to_have_text("written offline")
    expect(bob.page.locator("ol.pending li")).to_have_count(0)
    assert bob.texts() == ["made it in", *missed, "written offline"]
    expect(alice.sent().last).to_have_text("written offline")
    assert bob.texts() == alice.texts()

    alice.assert_quiet()
    bob.assert_quiet()
    for person in (alice, bob):
        assert not [u for u in person.urls if "token=" in u.lower()], person.urls


def test_paid_join_shows_price_and_new_balance(people, web_server):
    owner = new_user(web_server, prime=True)
    payer = new_user(web_server, coins=220, name="Payer")
    poor = new_user(web_server, coins=40, name="Poor")
    token = token_of(web_server, owner)
    rooms = []
    for name in ("First", "Second"):
        status, body = call(
            web_server,
            "POST",
            "/api/chatrooms",
            {"name": name, "password": "pw-" + name},
            token=token,
        )
        assert status == 201, body
        rooms.append(body["room"]["roomId"])
    for user in (payer, poor):  # their free first room
        status, body = call(
            web_server,
            "POST",
            "/api/joinroom",
            {"roomId": rooms[0], "password": "pw-First"},
            token=token_of(web_server, user),
        )
        assert status == 200 and body["charged"] == 0, body

    person = people().open()
    person.sign_in(payer["userId"])
    expect(person.page.locator("#coins")).to_have_text("220 coins")
    dialog = join_in_ui(person, rooms[1], "pw-Second")
    expect(dialog.locator("#join-price")).to_have_text(
        "This room costs 150 coins; you have 220. You will have 70 left."
    )
    person.shot("paid-join")
    dialog.get_by_role("button", name="Pay 150 coins and join").click()
    expect(person.page.locator("#notice")).to_have_text(
        "You joined Second. You paid 150 coins; you now have 70 coins."
    )
    expect(person.page.locator("#coins")).to_have_text("70 coins")
    person.assert_quiet()

    other = people().open()
    other.sign_in(poor["userId"])
    dialog = join_in_ui(other, rooms[1], "pw-Second")
    expect(dialog.locator("#join-price")).to_have_text(
        "This room costs 150 coins; you have 40. You need 110 more coins to join."
    )
    expect(dialog.get_by_role("button", name="Pay 150 coins and join")).to_be_disabled()
    other.assert_quiet()


def test_errors_are_in_words(people, web_server):
    user = new_user(web_server)
    person = people().open()
    page = person.page
    page.get_by_label("User ID or phone number").fill(user["userId"])
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-form .form-error")).to_have_text(
        "Wrong user ID, phone number or password."
    )
    person.sign_in(user["userId"])
    dialog = join_in_ui(person, "nosuchroom", "whatever")
    dialog.get_by_role("button", name="Join").click()
    expect(dialog.locator(".form-error")).to_have_text("There is no room with that ID.")
    # The browser logs each refused request; nothing else may appear.
    person.assert_quiet(allowed=[r"status of (401|404)"])


def test_phone_sized_screen_and_keyboard_only(people, web_server):
    owner = new_user(web_server, prime=True, name="Phone owner")
    token = token_of(web_server, owner)
    status, body = call(
        web_server, "POST", "/api/chatrooms", {"name": "Pocket", "password": "pocket"}, token=token
    )
    assert status == 201, body
    person = people(PHONE, scheme="dark").open()
    page = person.page

    # Sign in with the keyboard alone.
    page.get_by_label("User ID or phone number").focus()
    page.keyboard.type(owner["userId"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#conn")).to_have_text("Connected")
    person.shot("rooms-phone")
    for _ in range(30):
        if page.evaluate("document.activeElement.classList.contains('room-item')"):
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#room-title")).to_have_text("Pocket")
    assert page.evaluate("document.activeElement.id") == "composer-input"
    page.keyboard.type("sent from a small screen")
    page.keyboard.press("Enter")
    expect(person.sent().last).to_have_text("sent from a small screen")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator("#room-list")).to_be_hidden()
    person.shot("room-phone")
    page.get_by_role("button", name="← Rooms").click()
    expect(page.locator("#room-list")).to_be_visible()
    person.assert_quiet()


def test_first_load_is_light_and_cached_by_name(people, web_server):
    person = people()
    sizes = {}

    def record(response):
        kind = response.headers.get("content-type", "")
        if any(k in kind for k in ("text/html", "javascript", "text/css")):
            sizes[response.url] = (len(response.body()), response.headers.get("cache-control"))

    person.page.on("response", record)
    person.open()
    expect(person.page.get_by_role("heading", name="Sign in")).to_be_visible()
    person.page.wait_for_load_state("networkidle")
    assert person.page.evaluate(UNLABELLED) == []
    total = sum(size for size, _ in sizes.values())
    assert total < 150_000, sizes
    assert len(sizes) >= 4, sizes  # the page, the styles, and every module
    for url, (_, cache) in sizes.items():
        if url.rstrip("/") == web_server.base_url:
            assert cache == "no-cache"
        else:
            assert re.search(r"/static/[0-9a-f]{16}/", url), url
            assert cache == "public, max-age=31536000, immutable"
    person.assert_quiet()

    for url in sizes:  # the page and each file run under the strict policy
        with urllib.request.urlopen(url, timeout=30) as resp:
            csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp, csp
        assert "unsafe" not in csp, csp

    stale = re.sub(
        r"/static/[0-9a-f]{16}/",
        "/static/0000000000000000/",
        next(u for u in sizes if "/static/" in u),
    )
    status, body = call(web_server, "GET", stale.replace(web_server.base_url, ""))
    assert status == 404 and body["error"]["code"] == "not_found"


def room_of(server, owner, *members, name="Room"):
    """A room made over the API by ``owner``, joined by ``members``; its id."""
    status, body = call(
        server,
        "POST",
        "/api/chatrooms",
        {"name": name, "password": "pw-" + name},
        token=token_of(server, owner),
    )
    assert status == 201, body
    room_id = body["room"]["roomId"]
    for member in members:
        status, body = call(
            server,
            "POST",
            "/api/joinroom",
            {"roomId": room_id, "password": "pw-" + name},
            token=token_of(server, member),
        )
        assert status == 200, body
    return room_id


def test_history_pages_back_and_leaving_updates_the_members(people, web_server):
    owner = new_user(web_server, prime=True, name="Owner")
    member = new_user(web_server, name="Member")
    room_id = room_of(web_server, owner, member, name="Archive")
    token = token_of(web_server, owner)
    for n in range(1, 61):
        status, body = call(
            web_server,
            "POST",
            "/api/messages",
            {"roomId": room_id, "content": f"message {n}"},
            token=token,
        )
        assert status == 201, body

    reader = people().open().sign_in(member["userId"])
    reader.open_room("Archive")
    expect(reader.sent()).to_have_count(50)
    assert reader.texts() == [f"message {n}" for n in range(11, 61)]
    reader.page.get_by_role("button", name="Load earlier messages").click()
    expect(reader.sent()).to_have_count(60)
    assert reader.texts() == [f"message {n}" for n in range(1, 61)]
    expect(reader.page.get_by_role("button", name="Load earlier messages")).to_be_hidden()

    host = people().open().sign_in(owner["userId"])
    host.open_room("Archive")
    host.page.get_by_role("button", name="Members").click()
    expect(host.page.locator("#member-list")).to_contain_text("Member")
    expect(host.page.locator("#room-id")).to_contain_text("2 of 6 members")

    reader.page.get_by_role("button", name="Leave").click()
    reader.page.locator("#confirm-dialog").get_by_role("button", name="Leave room").click()
    expect(reader.page.locator("#notice")).to_have_text("You left Archive.")
    expect(reader.page.locator("#room-list")).not_to_contain_text("Archive")
    expect(host.page.locator("#room-id")).to_contain_text("1 of 6 members")
    expect(host.page.locator("#member-list")).not_to_contain_text("Member")
    reader.assert_quiet()
    host.assert_quiet()


def test_friend_requests_sent_withdrawn_declined_accepted(people, web_server):
    ann = new_user(web_server, prime=True, name="Ann")
    ben = new_user(web_server, name="Ben")
    cy = new_user(web_server, name="Cy")
    room_of(web_server, ann, ben, cy, name="Club")

    a = people().open().sign_in(ann["userId"])
    a.page.get_by_role("button", name="Friends").click()
    form = a.page.locator("#friend-form")
    form.get_by_label("Send a friend request to (user ID)").fill(ben["userId"])
    form.get_by_role("button", name="Send request").click()
    expect(a.page.locator("#notice")).to_have_text("Friend request sent to Ben.")
    expect(a.page.locator("#outgoing-list")).to_contain_text("Ben")
    a.page.locator("#outgoing-list").get_by_role("button", name="Withdraw").click()
    expect(a.page.locator("#notice")).to_have_text("Request withdrawn.")
    expect(a.page.locator("#outgoing-list")).to_have_text("None.")
    form.get_by_label("Send a friend request to (user ID)").fill(ben["userId"])
    form.get_by_role("button", name="Send request").click()
    expect(a.page.locator("#outgoing-list")).to_contain_text("Ben")

    status, body = call(
        web_server,
        "POST",
        "/api/friend-requests",
        {"userId": ben["userId"]},
        token=token_of(web_server, cy),
    )
    assert status == 201, body

    b = people().open().sign_in(ben["userId"])
    b.page.get_by_role("button", name="Friends").click()
    incoming = b.page.locator("#incoming-list")
    expect(incoming.get_by_role("listitem")).to_have_count(2)
    incoming.get_by_role("listitem").filter(has_text="Cy").get_by_role(
        "button", name="Decline"
    ).click()
    expect(b.page.locator("#notice")).to_have_text("Request declined.")
    expect(incoming.get_by_role("listitem")).to_have_count(1)
    incoming.get_by_role("button", name="Accept").click()
    expect(b.page.locator("#notice")).to_have_text("You and Ann are now friends.")
    expect(b.page.locator("#friend-list")).to_contain_text("Ann")
    expect(incoming).to_have_text("None.")
    b.shot("friends")
    assert b.page.evaluate(UNLABELLED) == []

    # A profile opened from the member list knows they are friends now.
    b.page.get_by_role("button", name="Rooms").click()
    b.open_room("Club")
    b.page.get_by_role("button", name="Members").click()
    b.page.locator("#member-list").get_by_role("button", name="Ann").click()
    profile = b.page.locator("#profile-dialog")
    expect(profile.locator("#profile-body")).to_contain_text(ann["userId"])
    expect(profile.locator("#profile-status")).to_have_text("You are friends.")
    expect(profile.get_by_role("button", name="Send friend request")).to_be_hidden()
    profile.get_by_role("button", name="Close").click()
    b.page.locator("#member-list").get_by_role("button", name="Cy").click()
    profile.get_by_role("button", name="Send friend request").click()
    expect(profile.locator("#profile-status")).to_have_text("Friend request sent to Cy.")
    a.assert_quiet()
    b.assert_quiet()


def test_every_refusal_reads_as_words(people):
    """The words for each error code the API can answer, as the page would show them."""
    person = people().open()
    expect(person.page.get_by_role("heading", name="Sign in")).to_be_visible()
    said = person.page.evaluate(
        """async () => {
            const src = document.querySelector("script[type=module]").src;
            const api = await import(src.replace("app.js", "api.js"));
            const e = (status, code, details = {}, retry = 0) =>
                api.describe(new api.ApiError(status, code, "", details, retry));
            return {
                rate: e(429, "rate_limited", {}, 30),
                overloaded: e(503, "overloaded", {}, 2),
                unavailable: e(503, "unavailable"),
                offline: e(0, "offline"),
                full: e(409, "room_full"),
                coins: e(402, "insufficient_coins", {required: 150, available: 40}),
                password: e(403, "wrong_room_password"),
                invite: e(403, "invite_invalid"),
                login: e(401, "invalid_credentials"),
                fields: e(400, "validation_failed",
                          {errors: [{field: "phone", message: "must look like +123456789"}]}),
            };
        }"""
    )
    assert said == {
        "rate": "Too many tries in a short time. Wait 30 seconds and try again.",
        "overloaded": "The server is too busy right now. Try again in 2 seconds.",
        "unavailable": "The server cannot reach its database right now. Try again in a moment.",
        "offline": "You appear to be offline, or the server cannot be reached. "
        "Check your connection and try again.",
        "full": "This room is full: it already has 6 members.",
        "coins": "This room costs 150 coins; you have 40. You need 110 more.",
        "password": "That room password is wrong.",
        "invite": "This invitation link does not work: it has expired, was already used, "
        "or was made for another account.",
        "login": "Wrong user ID, phone number or password.",
        "fields": "Please check: phone: must look like +123456789.",
    }
    person.assert_quiet()


def test_an_invitation_link_opened_before_signing_in(people, web_server):
    owner = new_user(web_server, prime=True, name="Host")
    guest = new_user(web_server, prime=True, name="Guest")
    room_id = room_of(web_server, owner, name="Salon")
    status, body = call(
        web_server,
        "POST",
        "/api/invite",
        {"roomId": room_id, "userId": guest["userId"]},
        token=token_of(web_server, owner),
    )
    assert status == 201, body
    token = body["invitation"]["token"]

    person = people()
    person.page.goto(f"{web_server.base_url}/#invite={token}")
    expect(person.page.locator("#notice")).to_have_text("Sign in to accept the invitation.")
    assert "#invite" not in person.page.url
    person.sign_in(guest["userId"])
    dialog = person.page.locator("#join-dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Join by invitation")
    dialog.get_by_role("button", name="Join").click()
    expect(person.page.locator("#room-title")).to_have_text("Salon")
    assert not [u for u in person.urls if token in u]

    # Used once: the same link again is refused in words.
    person.page.goto(f"{web_server.base_url}/#invite={token}")
    dialog.get_by_role("button", name="Join").click()
    expect(dialog.locator(".form-error")).to_contain_text("This invitation link does not work")
    person.assert_quiet(allowed=[r"status of 403"])


def test_reload_and_new_tabs_keep_the_session_and_the_history(people, web_server):
    owner = new_user(web_server, prime=True, name="Reloader")
    room_of(web_server, owner, name="Kept")
    person = people().open().sign_in(owner["userId"])
    person.open_room("Kept")
    for text in ("one", "two", "three"):
        person.say(text)

    # A reload gets a new access token with the stored refresh token, and
    # reopens the room it showed, history included.
    person.page.reload()
    expect(person.page.locator("#conn")).to_have_text("Connected")
    expect(person.page.locator("#room-title")).to_have_text("Kept")
    expect(person.sent()).to_have_count(3)
    assert person.texts() == ["one", "two", "three"]

    # Two more tabs share the rotating refresh token; each refresh reads the
    # newest one under a lock, so none replays a used one (which would end
    # the whole session).
    tabs = [person.context.new_page() for _ in range(2)]
    for tab in tabs:
        tab.goto(web_server.base_url + "/")
    for tab in (*tabs, person.page):
        expect(tab.locator("#conn")).to_have_text("Connected")
    person.page.reload()
    expect(person.page.locator("#conn")).to_have_text("Connected")
    person.say("still signed in")
    for tab in tabs:
        tab.close()
    person.assert_quiet()

    # "Keep me signed in" unticked: the refresh token stays in this tab only.
    once = people().open()
    once.page.get_by_label("Keep me signed in on this device").uncheck()
    once.sign_in(owner["userId"])
    other_tab = once.context.new_page()
    other_tab.goto(web_server.base_url + "/")
    expect(other_tab.get_by_role("heading", name="Sign in")).to_be_visible()
    once.page.reload()
    expect(once.page.locator("#conn")).to_have_text("Connected")
    once.assert_quiet()


def test_sessions_listed_ended_and_password_changed(people, web_server):
    user = new_user(web_server, name="Traveller")
    laptop = people().open().sign_in(user["userId"])
    phone = people(PHONE).open().sign_in(user["phone"])

    laptop.page.get_by_role("button", name="Account").click()
    sessions = laptop.page.locator("#session-list")
    expect(sessions.get_by_role("listitem")).to_have_count(2)
    expect(sessions).to_contain_text("this browser")
    laptop.shot("account")
    sessions.get_by_role("button", name=re.compile("^End the session")).click()
    expect(laptop.page.locator("#notice")).to_contain_text("Signed out")
    expect(sessions.get_by_role("listitem")).to_have_count(1)

    # The phone's socket is closed, its refresh token refused: it says so.
    expect(phone.page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(phone.page.locator("#notice")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    phone.assert_quiet(allowed=[r"status of 401"])

    form = laptop.page.locator("#password-form")
    form.get_by_label("Current password").fill("not my password")
    form.get_by_label("New password").fill("a brand new password")
    form.get_by_role("button", name="Change password").click()
    expect(form.locator(".form-error")).to_have_text("Your current password is wrong.")
    form.get_by_label("Current password").fill(PASSWORD)
    form.get_by_role("button", name="Change password").click()
    expect(laptop.page.locator("#notice")).to_have_text(
        "Password changed. Every other session was signed out."
    )
    laptop.page.locator("#account-view").get_by_role("button", name="Sign out").first.click()
    expect(laptop.page.get_by_role("heading", name="Sign in")).to_be_visible()
    laptop.sign_in(user["userId"], "a brand new password")
    laptop.assert_quiet(allowed=[r"status of 401"])


def test_an_expired_access_token_is_renewed_and_the_socket_opened_again(people, web_server):
    # The server closes a socket whose access token expires (4001); the client
    # renews the token with its refresh token and connects again. Tokens live
    # 15 minutes (60 s at the least), so the login's answer is rewritten to
    # carry a token of the same session that expires in 3 s.
    owner = new_user(web_server, prime=True, name="Renewer")
    room_id = room_of(web_server, owner, name="Renewed")

    def short_lived(route):
        response = route.fetch()
        body = response.json()
        claims = jwt.decode(body["token"], TEST_SECRET, algorithms=["HS256"])
        claims["exp"] = int(time.time()) + 3
        body["token"] = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
        route.fulfill(response=response, json=body)

    person = people()
    sockets = []
    person.page.on("websocket", lambda ws: sockets.append(ws))
    person.page.route("**/api/login", short_lived)
    person.open().sign_in(owner["userId"])
    person.open_room("Renewed")
    expect(person.page.locator("#conn")).to_have_text("Connected")
    person.page.wait_for_timeout(4000)  # past the short token's expiry
    expect(person.page.locator("#conn")).to_have_text("Connected")
    assert len(sockets) == 2 and sockets[0].is_closed()
    assert any(url.endswith("/api/token/refresh") for url in person.urls)

    # The new socket is subscribed: a message sent meanwhile over the API arrives.
    status, body = call(
        web_server,
        "POST",
        "/api/messages",
        {"roomId": room_id, "content": "after the renewal"},
        token=token_of(web_server, owner),
    )
    assert status == 201, body
    expect(person.sent().last).to_have_text("after the renewal")
    person.say("and back")
    person.assert_quiet()
