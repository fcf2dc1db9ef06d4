"""The console in a real browser: Debian's headless Chromium, driven by Selenium, against the service on real HTTP.

The browser is the system's (``/usr/bin/chromium`` and ``chromedriver``; ``.ci/run`` installs them): nothing is
downloaded at run time. Without them these tests skip, saying why. With ``BANDIT_PUSH_SCREENSHOTS=<dir>`` the
page tour saves a screenshot of every page there (docs/console.md shows them).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

import retail
from bandit_push import experiments, refit
from bandit_push.config import parse_api_keys

ADMIN, READ, GATEWAY = "adm-7f3c9a1e", "rd-52be40d1", "gw-0c81d6aa"
KEYS = f"admin:{ADMIN},read:{READ},gateway:{GATEWAY}"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = os.environ.get("BANDIT_PUSH_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM or not DRIVER:
        pytest.skip("the browser tests need Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver; .ci/run installs them): not found on PATH")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def service(make_app, monkeypatch, settings):
    """The API with keys, on a real threaded HTTP server; the environment an RQ worker of it reads."""
    app = make_app(api_keys=parse_api_keys(KEYS), refit_retries=0)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BANDIT_PUSH_PREFIX", settings.prefix)
    monkeypatch.setenv("BANDIT_PUSH_QUIET_HOURS", "off")
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(5)
    from rq import Queue
    from rq.serializers import JSONSerializer

    store = app.extensions["bandit_push"].store  # RQ's keys are not under the prefix: the queue goes by hand
    Queue(settings.queue, connection=store.binary, serializer=JSONSerializer).delete(delete_jobs=True)


def api(base: str, method: str, path: str, key: str, **kw):
    r = requests.request(method, base + path, headers={"Authorization": f"Bearer {key}"}, timeout=10, **kw)
    assert r.status_code < 400, (path, r.status_code, r.text)
    return r.json()


def by(css: str):
    from selenium.webdriver.common.by import By

    return By.CSS_SELECTOR, css


def wait_for(driver, css: str, timeout: float = 10.0):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located(by(css)))


def sign_in(driver, base: str, key: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/console/")
    assert "/console/sign-in" in driver.current_url
    driver.find_element(*by("#key")).send_keys(key)
    driver.find_element(*by("form button[type=submit]")).click()
    wait_for(driver, "nav[aria-label=Console]")


def shown(text: str) -> float | None:
    """The number a cell shows: '+1.23 pp' -> 0.0123, '12.3%' -> 0.123, '0.5 pts/user' -> 0.5; '—' -> None."""
    token = text.strip().split()[0] if text.strip() else "—"
    if token == "—":
        return None
    value = float(token.rstrip("%").replace("−", "-"))
    return value / 100 if token.endswith("%") or text.strip().endswith("pp") else value


def close(page: float | None, api_value: float | None, sig: int = 3) -> bool:
    """The page's number is the API's, rounded to ``sig`` significant digits."""
    if page is None or api_value is None:
        return page is None and api_value is None
    return math.isclose(page, api_value, rel_tol=0.6 * 10 ** (1 - sig), abs_tol=1e-12)


def drive_traffic(base: str, user_ids: list[str], times: list[float | None], spread_s: float = 0.0) -> list[dict]:
    """Decides for each user at each time (None: the server's clock; the users spread evenly over ``spread_s``
    after it) over HTTP with the gateway key, and feedback on the sends: a click from every third user, a
    conversion from every seventh, a dismissal from every fifth."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {GATEWAY}"
    out = []
    for t in times:
        for i, user_id in enumerate(user_ids):
            body = {"user_id": user_id} if t is None else {"user_id": user_id, "now": t + spread_s * i / len(user_ids)}
            r = session.post(base + "/v1/decide", json=body, timeout=10)
            assert r.status_code == 200, r.text
            d = r.json()
            out.append(d)
            if not d["send"]:
                continue
            for event, every in (("clicked", 3), ("converted", 7), ("dismissed", 5)):
                if i % every == 0:
                    fb = {"decision_id": d["decision_id"], "event": event}
                    if t is not None:
                        fb["ts"] = body["now"] + 600
                    assert session.post(base + "/v1/feedback", json=fb, timeout=10).status_code == 200
    return out


def test_aa_experiment_created_started_and_read_in_the_browser_matches_the_api(browser, service):
    base, _app = service
    b = browser
    sign_in(b, base, ADMIN)
    b.find_element(*by("a.button[href$='/experiments/new']")).click()
    b.find_element(*by("#name")).send_keys("A/A: thompson against itself")
    b.find_element(*by("[id='variants[0].name']")).send_keys("a")
    b.find_element(*by("[id='variants[1].name']")).send_keys("b")
    b.find_element(*by("[id='variants[1].weight']")).send_keys("lots")
    b.find_element(*by("#create")).click()
    # the API's own validation, its message beside the field
    err = wait_for(b, "[id='variants[1].weight-error']")
    assert err.text == "variants[1].weight must be a positive number (at most 1e6)"
    weight = b.find_element(*by("[id='variants[1].weight']"))
    assert weight.get_attribute("aria-invalid") == "true"
    assert b.find_element(*by("#name")).get_attribute("value") == "A/A: thompson against itself"  # kept
    weight.clear()
    weight.send_keys("1")
    b.find_element(*by("#create")).click()
    assert wait_for(b, "#status").text == "draft"
    experiment_id = int(b.current_url.rstrip("/").rsplit("/", 1)[1])

    b.find_element(*by("a.button[href$='/start']")).click()
    wait_for(b, "#confirm").click()  # the confirmation page's POST, with its CSRF token
    assert wait_for(b, "#status").text == "running"
    assert api(base, "get", f"/v1/experiments/{experiment_id}", ADMIN)["status"] == "running"

    drive_traffic(base, [f"user{i}@shop" for i in range(160)], [None])
    b.refresh()
    rep = api(base, "get", f"/v1/experiments/{experiment_id}/report", READ)
    assert all(v["users"] >= 40 for v in rep["variants"]) and rep["comparisons"]
    assert b.find_element(*by("#summary")).text == rep["summary"]
    for v in rep["variants"]:
        row = f"#variants tr[data-variant='{v['name']}']"
        assert int(b.find_element(*by(f"{row} .users")).text) == v["users"]
        for metric in ("net_value_per_user", "sends_per_user", "ctr", "conversions_per_user", "unsubscribe_rate"):
            assert close(shown(b.find_element(*by(f"{row} .{metric}")).text), v[metric]), (v["name"], metric)
    for c in rep["comparisons"]:
        row = f"#comparisons tr[data-metric='{c['metric']}'][data-variant='{c['variant']}']"
        e, q = c["estimate"], c["sequential"]
        cells = {"td .diff": e["difference"], "td .ci .lo": e["ci_low"], "td .ci .hi": e["ci_high"],
                 ".seq .lo": q["ci_low"], ".seq .hi": q["ci_high"], ".pbeat": c["posterior"]["prob_beat_control"],
                 ".control": e["control_value"], ".value": e["variant_value"]}
        for css, value in cells.items():
            assert close(shown(b.find_element(*by(f"{row} {css}")).text), value), (c["metric"], css)
        assert close(shown(b.find_element(*by(f"{row} .pvalue")).text), e["p_value"], sig=2)
        label = b.find_element(*by(f"{row} svg.bars")).get_attribute("aria-label")  # the bars' text alternative
        assert "interval" in label and "always-valid" in label
    srm = b.find_element(*by("#srm")).text
    assert rep["sample_ratio"]["flagged"] is False and "p = " in srm
    assert close(float(re.search(r"p = ([0-9.e-]+)", srm).group(1)), rep["sample_ratio"]["p_value"], sig=2)
    wait_for(b, "[data-chart=exposures] canvas")  # uPlot drew the exposures


def test_a_read_key_sees_the_experiment_but_cannot_stop_it(browser, service):
    base, _app = service
    x = api(base, "post", "/v1/experiments", ADMIN, json={"name": "guarded", "variants": [
        {"name": "a", "policy": {"name": "thompson"}}, {"name": "b", "policy": {"name": "ucb"}}]})
    api(base, "post", f"/v1/experiments/{x['id']}/start", ADMIN)
    b = browser
    sign_in(b, base, READ)
    b.get(f"{base}/console/experiments/{x['id']}")
    assert wait_for(b, "#status").text == "running"
    assert b.find_elements(*by(".actions a")) == []  # no buttons for a read key
    b.get(f"{base}/console/experiments/{x['id']}/stop")
    assert "needs an admin key" in wait_for(b, "main .banner").text
    # a hand-made POST with this session's valid CSRF token: refused by the server, not only hidden
    token = b.find_element(*by("header input[name=csrf]")).get_attribute("value")
    b.execute_script("""const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
        const i = document.createElement('input'); i.type = 'hidden'; i.name = 'csrf'; i.value = arguments[1];
        f.appendChild(i); document.body.appendChild(f); f.submit();""",
                     f"{base}/console/experiments/{x['id']}/stop", token)
    assert "needs an admin key" in wait_for(b, "main .banner").text
    assert api(base, "get", f"/v1/experiments/{x['id']}", ADMIN)["status"] == "running"


def _no_overflow(b) -> bool:
    return b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def _screenshot(b, name: str) -> None:
    """The whole page (up to 2,400 px high) at the window's width, reduced to a 64-colour PNG."""
    if not SHOTS:
        return
    import base64

    size = b.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = b.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}})
    path = Path(SHOTS) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    try:
        from PIL import Image
    except ImportError:  # the [sim] extra brings Pillow; without it the PNGs stay as Chromium wrote them
        return
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=64, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def test_every_page_in_the_browser_at_1280_and_390_px(browser, service, store, settings):
    base, app = service
    b = browser
    b.get_log("browser")  # (empties it: the other tests' 4xx pages are logged there as errors)
    sign_in(b, base, ADMIN)
    # a refit that fails, run by a real RQ worker in this process: the models page lists it with its error
    # (nothing to fit yet is not a failure: that job would finish saying so)
    b.get(base + "/console/models")
    b.find_element(*by("#refit-mf")).click()
    wait_for(b, "#job-state")

    def broken(*args):
        raise OSError("the disk is gone")

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(refit.REFITS, "mf", broken)
        _work(store)
    # real shopping history (UCI Online Retail), the item model fit
    sample = retail.sample(150)
    retail.ingest(store, settings, sample)
    refit.run(store, settings, "mf", "test", lambda f, s: None)
    # the segmentation's refit from its button: the page follows the job (htmx) while a worker runs it
    b.get(base + "/console/models")
    b.find_element(*by("#refit-segments")).click()
    wait_for(b, "#job-state[hx-get]")
    _work(store)
    wait_for(b, "#job-state:not([hx-get]) .status.finished", timeout=15)
    _screenshot(b, "job")
    # an experiment on the new users for the last 30 hours; the shoppers learn in the service's own arms
    now = time.time()
    x = experiments.create(store, settings, {"name": "Thompson vs a 24-hour cadence, new users", "segments": ["new"],
                                             "variants": [{"name": "thompson", "policy": {"name": "thompson"}},
                                                          {"name": "cadence", "policy": {"name": "cadence"}}]},
                           now=now - 31 * 3600)
    experiments.transition(store, x.id, "start", now=now - 30 * 3600)
    times = [now - 30 * 3600 + k * 7 * 3600 for k in range(4)]
    shoppers = sorted({e.user_id for e in sample})
    drive_traffic(base, [f"user{i}@shop" for i in range(100)], times, spread_s=6 * 3600)
    decisions = drive_traffic(base, shoppers, times, spread_s=6 * 3600)
    by_policy = next(d for d in reversed(decisions) if d["reason"] == "policy")  # one with a posterior to explain

    pages = [("experiments", "/console/experiments"), ("experiment", f"/console/experiments/{x.id}"),
             ("segments", "/console/segments"), ("segment", f"/console/segments/{_busiest(store)}"),
             ("models", "/console/models"),
             ("decisions", f"/console/decisions?hours=36&decision_id={by_policy['decision_id']}"),
             ("evaluate", "/console/evaluate?policies=" + requests.utils.quote(
                 '[{"name": "thompson", "cost": 0.05}, {"name": "ucb"}, {"name": "cadence"}]'))]
    for name, path in pages:
        b.set_window_size(1280, 900)
        b.get(base + path)
        wait_for(b, "main h1")
        assert _no_overflow(b), f"{name} is wider than 1280 px"
        if b.find_elements(*by("[data-chart]")):
            wait_for(b, "[data-chart] canvas")
        _screenshot(b, name)
        b.set_window_size(390, 844)
        b.get(base + path)
        wait_for(b, "main h1")
        assert _no_overflow(b), f"{name} is wider than 390 px: only its tables may scroll"
        if name == "experiment":
            _screenshot(b, f"{name}-390")
    b.set_window_size(1280, 900)
    severe = [e for e in b.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe  # no script error, no resource or content-security-policy refusal

    b.get(base + pages[3][1])
    assert b.find_elements(*by("table.heat td[data-recency]")), "the segment's page shows no learned context"
    b.get(base + "/console/models")
    assert "refit(mf)" in b.find_element(*by("#failures")).text
    b.get(base + pages[-1][1])
    assert len(b.find_elements(*by("#estimates tr[data-estimator]"))) == 3 * 4
    # the new-experiment form with an error beside its field, for the docs
    b.get(base + "/console/experiments/new")
    b.find_element(*by("#name")).send_keys("Cadence every 2 days")
    b.find_element(*by("[id='variants[0].name']")).send_keys("control")
    b.find_element(*by("[id='variants[1].name']")).send_keys("every 2 days")
    b.find_element(*by("[id='variants[1].policy.name'] option[value=cadence]")).click()
    b.find_element(*by("[id='variants[1].policy']")).send_keys('{"cadence_gap_hours": 48}\n')  # Enter: creates
    assert "letters, digits or _.:-" in wait_for(b, "[id='variants[1].name-error']").text
    _screenshot(b, "new-experiment")


def _busiest(store) -> str:
    """The learned segment with the most users."""
    sizes = store.redis.hgetall(store.keys.segment_sizes())
    return max((s for s in sizes if s not in ("new", "default")), key=lambda s: int(sizes[s]))


def _work(store) -> None:
    """Run every queued job with a real RQ worker (in process, JSON serializer, burst)."""
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    queue = Queue(store.settings.queue, connection=store.binary, serializer=JSONSerializer)
    SimpleWorker([queue], connection=store.binary, serializer=JSONSerializer).work(burst=True)
