"""The agent panel in a real browser (Debian's Chromium driven by Playwright) against a real kioskd on the simulated
van: the token, a whole citizen session, live updates, the privacy curtain, contrast, cross-origin refusals and the
lost-connection banner. ``KIOSKD_PANEL_SCREENSHOTS=docs`` saves the screenshots the README shows."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from kioskd.hal import PowerState
from kioskd.records.store import Store
from tests.integration.daemon_process import ROOT, Daemon, start_daemon
from tests.integration.page_server import one_page
from tests.integration.require import binary

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# The WCAG 2.x contrast ratio of every visible text marked as main text, against the first opaque background
# found up its ancestors (the page's own colours: no image behind text).
CONTRAST_JS = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (node) => {
    for (let n = node; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const node of document.querySelectorAll('[data-main-text]')) {
    if (!node.textContent.trim() || !node.getClientRects().length) continue;
    const style = getComputedStyle(node);
    if (style.visibility === 'hidden' || Number(style.opacity) === 0) continue;
    const a = lum(rgb(style.color)), b = lum(background(node));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    out.push({text: node.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100});
  }
  return out;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = binary("chromium", "chromium")
    # Chromium's singleton socket lives under TMPDIR and a unix socket path must stay under 108 bytes
    short = tempfile.mkdtemp(prefix="pw-", dir="/tmp")
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = short
    playwright: Playwright = sync_playwright().start()
    try:
        b = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
    finally:
        playwright.stop()
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start_daemon(tmp_path)
    try:
        d.wait_for("READY=1")
        yield d
    finally:
        d.kill()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert not errors, f"the panel's script failed: {errors}"


def panel_url(daemon: Daemon) -> str:
    return daemon.ctl("panel").stdout.strip()


def base(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{json.loads((daemon.runtime / 'api.json').read_text())['port']}"


def token(daemon: Daemon) -> str:
    return (daemon.runtime / "panel-token").read_text().strip()


def open_panel(page: Page, daemon: Daemon) -> None:
    page.goto(panel_url(daemon))
    expect(page.locator("#main")).to_be_visible()
    expect(page.locator("#tile-power")).to_be_visible()


def shot(page: Page, name: str, tmp_path: Path) -> None:
    """A screenshot of the panel: in the test's temp dir, or under ``$KIOSKD_PANEL_SCREENSHOTS`` (docs/)."""
    folder = os.environ.get("KIOSKD_PANEL_SCREENSHOTS")
    target = (ROOT / folder) if folder else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"panel-{name}.png"), full_page=True)


# ----------------------------------------------------------------------------------------------- the token
def test_kioskctl_panel_prints_the_link_with_the_token_in_the_fragment(daemon: Daemon) -> None:
    url = panel_url(daemon)
    assert url == f"{base(daemon)}/#token={token(daemon)}"
    assert stat.S_IMODE(os.stat(daemon.runtime / "panel-token").st_mode) == 0o640


def test_without_the_token_the_page_explains_and_shows_no_station_data(daemon: Daemon, page: Page) -> None:
    page.goto(base(daemon) + "/")
    expect(page.locator("#locked")).to_be_visible()
    expect(page.locator("#locked-text")).to_contain_text("kioskctl panel")
    expect(page.locator("#main")).to_be_hidden()
    assert page.locator("#tile-power").count() == 0
    page.goto(base(daemon) + "/#token=" + "x" * 32)  # a wrong token is no better
    page.reload()
    expect(page.locator("#locked")).to_be_visible()
    assert page.locator("#tile-power").count() == 0
    # the page itself needs no token; the station's data does
    assert httpx.get(base(daemon) + "/").status_code == 200
    for path in ("/status", "/events", "/receipts", "/scans", "/scanning", "/power/history"):
        assert httpx.get(base(daemon) + path).status_code == 401, path


def test_the_token_leaves_the_address_bar_and_a_cookie_carries_it(daemon: Daemon, page: Page) -> None:
    open_panel(page, daemon)
    assert "token" not in page.url
    cookies = {c["name"]: c for c in page.context.cookies()}
    cookie = cookies["kioskd_panel"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page can read it
    page.reload()  # the cookie alone opens the panel again
    expect(page.locator("#tile-power")).to_be_visible()


# ----------------------------------------------------------------------------------------------- a whole session
def test_start_then_next_citizen_goes_through_a_session_and_shows_the_wipe_receipt(
    daemon: Daemon, page: Page, tmp_path: Path
) -> None:
    open_panel(page, daemon)
    title, primary = page.locator("#state-title"), page.locator("#primary")
    expect(title).to_have_text("Station éteinte")
    expect(primary).to_have_text("Démarrer")
    primary.click()
    expect(title).to_have_text("Prête")
    expect(primary).to_have_text("Citoyen suivant")
    expect(page.locator("#tile-receipt")).to_contain_text("Pas encore d'effacement")
    shot(page, "ready", tmp_path)
    primary.click()
    expect(title).to_have_text("Citoyen en cours – 0 min")
    first = daemon.status()["session"]
    assert isinstance(first, dict)
    expect(page.locator("#tile-scanner [data-field=scans]")).to_have_text("Aucun scan pour ce citoyen")
    shot(page, "in-session", tmp_path)
    primary.click()
    receipt = page.locator("#tile-receipt [data-field=receipt]")
    expect(receipt).to_have_attribute("data-session", first["id"])
    expect(page.locator("#tile-receipt [data-field=verdict]")).to_have_text("Effacé et vérifié")
    expect(title).to_have_text("Citoyen en cours – 0 min")  # the next citizen's session
    second = daemon.status()["session"]
    assert isinstance(second, dict) and second["id"] != first["id"]
    shot(page, "receipt", tmp_path)


def test_end_of_day_asks_first_and_cancel_keeps_the_session(daemon: Daemon, page: Page) -> None:
    daemon.open_session()
    open_panel(page, daemon)
    page.locator("#end-of-day").click()
    expect(page.locator("#confirm")).to_be_visible()
    page.keyboard.press("Enter")  # the focus starts on "Annuler": a stray Enter ends nothing
    expect(page.locator("#confirm")).to_be_hidden()
    assert daemon.status()["station"]["state"] == "in_session"  # type: ignore[index]
    page.locator("#end-of-day").click()
    page.locator("#confirm-yes").click()
    expect(page.locator("#state-title")).to_have_text("Station éteinte")
    expect(page.locator("#tile-receipt [data-field=verdict]")).to_have_text("Effacé et vérifié")


# ----------------------------------------------------------------------------------------------- live
def seed_power_history(state_dir: Path, hours: int = 10) -> int:
    """A morning on tour in the store before kioskd starts: on shore, then on battery for the last three hours."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store, now = Store(state_dir / "kioskd.sqlite"), time.time()
    samples = hours * 12
    for i in range(samples):
        at = now - (samples - i) * 300
        on_battery = at > now - 3 * 3600
        soc = 95.0 - (at - (now - 3 * 3600)) / 3600 * 5 if on_battery else min(95.0, 60 + i * 0.8)
        store._add_sample(at, PowerState(available=True, shore=not on_battery, soc=soc))
    return samples


@pytest.fixture
def day_daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    samples = seed_power_history(tmp_path / "state")
    d = start_daemon(tmp_path)
    try:
        d.wait_for("READY=1")
        yield d, samples
    finally:
        d.kill()


def test_shore_off_changes_the_power_tile_within_a_second_without_reload(
    day_daemon: tuple[Daemon, int], page: Page, tmp_path: Path
) -> None:
    daemon, samples = day_daemon
    daemon.open_session()
    open_panel(page, daemon)
    points = page.locator("#tile-power polyline").get_attribute("points")
    assert points is not None and len(points.split()) >= samples  # the chart of the last hours, plus now
    page.evaluate("window.loadedOnce = true")
    source = page.locator("#tile-power [data-field=source]")
    expect(source).to_contain_text("Secteur")
    started = time.monotonic()
    daemon.ctl("sim", "shore", "off")
    returned = time.monotonic()
    page.wait_for_function("document.querySelector('#tile-power').dataset.shore === 'false'", timeout=1000)
    print(f"shore off: kioskctl {returned - started:.2f} s, DOM {time.monotonic() - returned:.3f} s after it")
    expect(source).to_contain_text("Sur batterie")
    assert page.evaluate("window.loadedOnce") is True  # the same page, not a reload
    # the shore notice comes after its debounce, on its own line: the battery warning then shows beside it
    shore_notice = page.locator('.notice[data-topic="power.shore"]')
    expect(shore_notice).to_contain_text("Secteur débranché", timeout=15_000)
    daemon.ctl("sim", "soc", "25")
    expect(page.locator(".notice[data-topic=power]")).to_contain_text("Batterie faible (25 %)")
    expect(shore_notice).to_contain_text("Secteur débranché")
    expect(page.locator("#tile-power [data-field=headline]")).to_have_text("25 %")
    shot(page, "power-warning", tmp_path)


def test_the_privacy_button_toggles_the_curtain(daemon: Daemon, page: Page, tmp_path: Path) -> None:
    daemon.open_session()
    open_panel(page, daemon)
    button = page.locator("#privacy")
    expect(button).to_have_text("Masquer l'écran citoyen")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(page.locator("#tile-displays [data-field=curtain]")).to_have_attribute("data-curtain", "true")
    expect(button).to_have_text("Montrer l'écran citoyen")
    expect(button).to_have_attribute("aria-pressed", "true")
    assert daemon.status()["displays"]["curtain"] is True  # type: ignore[index]
    shot(page, "curtain", tmp_path)
    button.click()
    expect(page.locator("#tile-displays [data-field=curtain]")).to_have_attribute("data-curtain", "false")
    assert daemon.status()["displays"]["curtain"] is False  # type: ignore[index]


def test_the_handover_and_confidential_buttons_give_the_citizen_the_controls(daemon: Daemon, page: Page) -> None:
    daemon.open_session()
    open_panel(page, daemon)
    handover, confidential = page.locator("#handover"), page.locator("#confidential")
    expect(handover).to_have_text("Main au citoyen")
    expect(confidential).to_have_text("Saisie confidentielle")
    handover.click()
    expect(handover).to_have_text("Reprendre la main")
    expect(page.locator("#tile-displays [data-field=handover]")).to_have_text("Le citoyen a la main")
    assert daemon.status()["handover"]["handover"] is True  # type: ignore[index]
    confidential.click()
    expect(confidential).to_have_text("Fin de la saisie confidentielle")
    assert daemon.status()["displays"]["agent_curtain"] is True  # type: ignore[index]
    confidential.click()
    expect(confidential).to_have_text("Saisie confidentielle")
    handover.click()
    expect(handover).to_have_text("Main au citoyen")
    assert daemon.status()["handover"]["handover"] is False  # type: ignore[index]
    page.locator("#privacy").click()  # under the curtain the citizen cannot be handed the controls
    expect(handover).to_be_disabled()


def test_a_scan_from_the_panel_shows_in_the_list_with_a_thumbnail_never_cached(daemon: Daemon, page: Page) -> None:
    daemon.open_session()
    open_panel(page, daemon)
    expect(page.locator("#scan-destination option")).to_have_count(2)  # the profile's two upload sites
    page.locator("#scan").click()
    item = page.locator("#tile-scanner [data-field=scans] li")
    expect(item).to_have_count(1, timeout=30_000)
    image = item.locator("img")
    page.wait_for_function("document.querySelector('#tile-scanner img').naturalWidth > 0")
    src = image.get_attribute("src")
    assert src is not None and src.startswith("/scans/scan-")
    answer = httpx.get(base(daemon) + src, headers={"Authorization": f"Bearer {token(daemon)}"})
    assert answer.status_code == 200 and answer.content[:3] == b"\xff\xd8\xff"
    assert answer.headers["cache-control"] == "no-store"
    for bad in ("/scans/..%2F..%2Fkioskd.sock/thumbnail", "/scans/scan-20990101-000000.pdf/thumbnail"):
        assert httpx.get(base(daemon) + bad, headers={"Authorization": f"Bearer {token(daemon)}"}).status_code in (
            404,
            400,
        )


def test_english_switch_translates_the_header_and_the_tiles(daemon: Daemon, page: Page) -> None:
    open_panel(page, daemon)
    page.locator("#lang").click()
    expect(page.locator("#state-title")).to_have_text("Station off")
    expect(page.locator("#primary")).to_have_text("Start")
    expect(page.locator("#tile-power h2")).to_have_text("Power")
    assert page.evaluate("document.documentElement.lang") == "en"
    page.reload()
    expect(page.locator("#state-title")).to_have_text("Station off")  # the choice stays with the browser
    page.locator("#lang").click()
    expect(page.locator("#state-title")).to_have_text("Station éteinte")


def test_keyboard_alone_starts_the_station_and_the_focus_is_visible(daemon: Daemon, page: Page) -> None:
    open_panel(page, daemon)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "primary"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("#state-title")).to_have_text("Prête")
    sizes = page.evaluate(
        "[...document.querySelectorAll('button:not([hidden]), select')].filter(b => b.getClientRects().length)"
        ".map(b => [b.id, b.getBoundingClientRect().height, b.getBoundingClientRect().width])"
    )
    small = [s for s in sizes if s[1] < 44 or s[2] < 44]
    assert sizes and not small, f"touch targets under 44 px: {small}"


def test_main_texts_meet_wcag_aa_contrast(daemon: Daemon, page: Page) -> None:
    daemon.open_session()
    daemon.ctl("sim", "shore", "off")
    daemon.ctl("sim", "soc", "25")  # a warning notice
    daemon.ctl("sim", "printer", "paper", "0")  # a printer fault in red
    open_panel(page, daemon)
    expect(page.locator(".notice.warning").first).to_be_visible()
    measured = page.evaluate(CONTRAST_JS)
    texts = {m["text"] for m in measured}
    assert "Citoyen en cours – 0 min" in texts and "Citoyen suivant" in texts and "Énergie" in texts
    low = [m for m in measured if m["ratio"] < 4.5]
    assert not low, f"texts under WCAG AA 4.5:1: {low}"
    # the disabled primary button and the lost-connection banner too
    daemon.stop()
    expect(page.locator("#banner")).to_be_visible(timeout=10_000)
    low = [m for m in page.evaluate(CONTRAST_JS) if m["ratio"] < 4.5]
    assert not low, f"texts under WCAG AA 4.5:1 while disconnected: {low}"


# ----------------------------------------------------------------------------------------------- refusals
def test_cross_origin_and_foreign_host_requests_are_refused(daemon: Daemon, page: Page) -> None:
    auth = {"Authorization": f"Bearer {token(daemon)}"}
    url = base(daemon)
    evil = httpx.post(url + "/start", headers={**auth, "Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert not any(h.startswith("access-control-") for h in evil.headers)
    preflight = httpx.options(
        url + "/start", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    # DNS rebinding: a name that resolves to 127.0.0.1 is still not this API's host
    assert httpx.get(url + "/status", headers={**auth, "Host": "evil.example"}).status_code == 421
    assert httpx.get(url + "/", headers={"Host": "evil.example"}).status_code == 421
    assert httpx.get(url + "/status", headers=auth).status_code == 200

    # In the browser: the panel's cookie is set, then a page of another origin on this machine tries to press
    # "Démarrer" (a form-like POST needs no preflight, and 127.0.0.1 on another port is "same-site").
    open_panel(page, daemon)
    site = _EvilSite(f"{url}/start")
    try:
        page.goto(site.url)
        page.wait_for_function("window.outcome !== undefined", timeout=10_000)
        assert page.evaluate("window.outcome") in ("blocked", "status 403")
    finally:
        site.close()
    assert daemon.status()["station"]["state"] == "off"  # type: ignore[index]


class _EvilSite:
    """Another origin on 127.0.0.1 whose page posts to the panel's API with the browser's cookies."""

    def __init__(self, target: str) -> None:
        page = (
            "<!doctype html><script>fetch(" + json.dumps(target) + ", {method: 'POST', mode: 'no-cors', "
            "credentials: 'include', body: 'x'}).then(r => { window.outcome = r.type === 'opaque' ? 'blocked' : "
            "'status ' + r.status; }, () => { window.outcome = 'blocked'; });</script>"
        ).encode()
        self.server = one_page(page, {"Content-Type": "text/html"})
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()


# ----------------------------------------------------------------------------------------------- lost connection
def test_the_lost_connection_banner_shows_when_kioskd_stops_and_goes_when_it_is_back(
    daemon: Daemon, page: Page, tmp_path: Path
) -> None:
    open_panel(page, daemon)
    port = json.loads((daemon.runtime / "api.json").read_text())["port"]
    banner = page.locator("#banner")
    expect(banner).to_be_hidden()
    assert daemon.stop() == 0
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_have_text("Connexion perdue – reconnexion…")
    expect(page.locator("#primary")).to_be_disabled()
    # the same runtime dir keeps the token: the open panel reconnects by itself, without a new link
    again = start_daemon(tmp_path, "--port", str(port), name="kioskd-again")
    try:
        again.wait_for("READY=1")
        expect(banner).to_be_hidden(timeout=15_000)
        again.ctl("start")
        expect(page.locator("#state-title")).to_have_text("Prête")
    finally:
        again.kill()


def test_fields_and_parts_the_panel_does_not_know_yet_still_show(daemon: Daemon, page: Page) -> None:
    open_panel(page, daemon)
    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    # what later work adds to the snapshot (a modem's rsrp, a GPS) goes through the panel's one render path; the
    # stream is closed first, or its next snapshot would replace the one made up here
    page.evaluate(
        """async () => {
          P.source.close();
          const state = await (await fetch('/status')).json();
          state.modem.rsrp = -95;
          state.gps = {present: true, fix: true, satellites: 7};
          await onState(state);
        }"""
    )
    expect(page.locator("#tile-modem [data-field=rsrp]")).to_have_text("-95")
    expect(page.locator("#tile-gps [data-field=satellites]")).to_have_text("7")
    expect(page.locator("#tile-gps [data-field=fix]")).to_have_text("oui")
    expect(page.locator("#tile-button [data-field=led]")).to_have_text("off")  # the button's LED, as it is


UPLINKS_JS = """async () => {
  P.source.close();
  const state = await (await fetch('/status')).json();
  const u = (name, kind, operator, iface, more) => ({name, kind, interface: iface, active: iface !== null,
    registered: true, operator, signal: kind === 'gsm' ? 60 : null, technology: kind === 'gsm' ? 'lte' : 'none',
    cell: null, sim_slot: null, standby: false, ...more});
  state.modem.uplinks = [u('orange', 'gsm', 'Orange F', 'wwan0'), u('sfr', 'gsm', 'SFR', 'wwan1'),
    u('free', 'gsm', null, null, {sim_slot: 2, standby: true, technology: 'none', signal: null}),
    u('mairie', 'ethernet', null, 'eth0')];
  state.connectivity.uplink = 'sfr';
  state.connectivity.uplinks = [{name: 'orange', outcome: 'unreachable'}, {name: 'sfr', outcome: 'ok'},
    {name: 'free', outcome: ''}, {name: 'mairie', outcome: 'ok'}];
  await onState(state);
}"""


def test_the_network_tile_lists_every_uplink_with_its_probe_and_the_one_in_use(daemon: Daemon, page: Page) -> None:
    open_panel(page, daemon)
    expect(page.locator("body")).to_have_attribute("data-connection", "live")
    page.evaluate(UPLINKS_JS)  # the snapshot a van with NetworkManager's four uplinks serves (issue 21)
    table = page.locator("#tile-modem table.uplinks")
    expect(table.locator("caption")).to_have_text("Liens Internet")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(table.locator("tr[data-used=true] th")).to_have_text("sfr (en service)")
    expect(table.locator("tr[data-uplink=orange] [data-field=probe]")).to_have_text("ne répond pas")
    expect(table.locator("tr[data-uplink=orange] [data-field=probe]")).to_have_class("bad")
    expect(table.locator("tr[data-uplink=sfr] td").nth(2)).to_have_text("LTE 60 %")
    expect(table.locator("tr[data-uplink=free] [data-field=probe]")).to_have_text("SIM 2 en attente")
    expect(table.locator("tr[data-uplink=mairie] td").nth(1)).to_have_text("eth0")
    page.locator("#lang").click()
    expect(table.locator("caption")).to_have_text("Internet links")
    expect(table.locator("tr[data-used=true] th")).to_have_text("sfr (in use)")
    expect(table.locator("tr[data-uplink=free] [data-field=probe]")).to_have_text("SIM 2 waiting")
    contrast = page.evaluate(CONTRAST_JS)
    low = [c for c in contrast if c["ratio"] < 4.5]
    assert not low, low


def test_event_stream_clients_that_drop_mid_stream_leave_nothing_pending_in_the_daemon(daemon: Daemon) -> None:
    """Panels that go (a tab closed, a laptop asleep) while their stream waits: each waiter of the stream must end
    with it, not be collected pending ("Task was destroyed but it is pending!") nor wait for the daemon's stop."""
    port = json.loads((daemon.runtime / "api.json").read_text())["port"]
    request = (
        f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token(daemon)}\r\n\r\n"
    ).encode()
    daemon.ctl("start")
    for attempt in range(30):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(request)
            received = b""
            while b"event: state" not in received:
                chunk = conn.recv(65536)
                assert chunk, f"stream {attempt} ended before its first snapshot"
                received += chunk
            if attempt % 3 == 0:
                daemon.ctl("privacy", "on" if attempt % 2 == 0 else "off")  # a change while it is still open
    # the daemon goes on serving, and its stop collects whatever a stream left behind
    assert httpx.get(base(daemon) + "/status", headers={"Authorization": f"Bearer {token(daemon)}"}).status_code == 200
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "Task was destroyed but it is pending" not in log, log[-3000:]
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
