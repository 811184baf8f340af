"""`advnets explore` (issue 29): the server's API through Starlette's test client, and the live toy training
against advnets.toy's own runs. The page itself is driven in a real browser in test_explore_browser.py."""

from __future__ import annotations

import base64
import math

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

from advnets.config import override
from advnets.errors import AdvnetsError
from advnets.explore.app import MAX_BODY, RateLimit, create_app
from advnets.explore.models import ModelSession
from advnets.explore.routes import ROUTES
from advnets.explore.toys import ToySession
from advnets.toy import toy_config, train_toy
from advnets.train import Trainer
from conftest import cli_in_process, tiny_config

TOKEN = "test-token-123"
H = {"X-Advnets-Token": TOKEN}


def client(model=None, limit=None) -> TestClient:
    return TestClient(create_app(TOKEN, model=model, limit=limit))


def pixels(images: dict) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(images["pixels"]), dtype=np.uint8)
    return raw.reshape(images["n"], images["h"], images["w"], images["c"])


# ------------------------------------------------------------------------------------ the toy, live


@pytest.mark.parametrize("dataset", [pytest.param("gaussian", marks=pytest.mark.slow), "ring8"])  # gaussian: ~14 s
def test_n_steps_in_the_page_equal_n_steps_of_advnets_toy(dataset):
    """The server trains with advnets.toy's own functions: after 15 iterations through the API, G and D are those
    of train_toy(steps=15) with the same seed, and the last losses are its last logged ones."""
    c = client()
    c.post("/api/toy/settings", json={"dataset": dataset, "seed": 3}, headers=H)
    for _ in range(3):
        view = c.post("/api/toy/step", json={"kind": "iteration", "n": 5}, headers=H).json()
    assert view["iterations"] == 15 and view["d_updates"] == 15 and view["g_updates"] == 15
    result = train_toy(toy_config(dataset, steps=15, seed=3, figure_d_steps=0, figure_g_steps=0))
    game = c.app.state.explorer.toy.game
    for mine, theirs in ((game.g, result.generator), (game.d, result.discriminator)):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    last = view["history"][-1]
    assert last["d_loss"] == pytest.approx(result.history[-1]["d_loss"], rel=1e-5)
    assert last["g_loss"] == pytest.approx(result.history[-1]["g_loss"], rel=1e-5)


def test_one_d_step_and_one_g_step_move_their_counters_only():
    c = client()
    view = c.post("/api/toy/step", json={"kind": "d", "n": 1}, headers=H).json()
    assert (view["iterations"], view["d_updates"], view["g_updates"]) == (0, 1, 0)
    view = c.post("/api/toy/step", json={"kind": "g", "n": 1}, headers=H).json()
    assert (view["iterations"], view["d_updates"], view["g_updates"]) == (0, 1, 1)
    view = c.post("/api/toy/reset", json={}, headers=H).json()
    assert (view["iterations"], view["d_updates"], view["g_updates"]) == (0, 0, 0)


def test_the_1d_view_is_figure_1_and_theorem_1():
    """D* = p_data / (p_data + p_g) pointwise, C(G) = -log 4 + 2 JSD, and G's initial samples are far from the
    data (JSD near log 2)."""
    view = client().get("/api/toy", headers=H).json()
    p, q, dstar = (np.array(view[k]) for k in ("p_data", "p_g", "d_star"))
    mask = p + q > 0
    np.testing.assert_allclose(dstar[mask], p[mask] / (p + q)[mask], rtol=1e-12)
    assert view["c_g"] == pytest.approx(-math.log(4) + 2 * view["jsd"])
    assert view["neg_log4"] == pytest.approx(-math.log(4))
    assert view["jsd"] > 0.6
    assert len(view["z"]) == len(view["gz"]) and len(view["x"]) == len(view["d"])


def test_simultaneous_updates_g_against_d_before_its_step():
    """Simultaneous: G's step does not see D's update, so G after an iteration is the same whatever D's learning
    rate; alternating: it is not."""

    def g_after(rule: str, lr: float) -> list[torch.Tensor]:
        s = ToySession("gaussian")
        s.configure({"rule": rule, "lr": lr})
        s.step("iteration", 1)
        return [p.detach().clone() for p in s.game.g.parameters()]

    same = [torch.equal(a, b) for a, b in zip(g_after("simultaneous", 1e-3), g_after("simultaneous", 0.5), strict=True)]
    assert all(same)
    differ = [torch.equal(a, b) for a, b in zip(g_after("alternating", 1e-3), g_after("alternating", 0.5), strict=True)]
    assert not all(differ)


def test_settings_apply_while_running():
    c = client()
    c.post("/api/toy/step", json={"kind": "iteration", "n": 3}, headers=H)
    view = c.post(
        "/api/toy/settings",
        json={"g_loss": "minimax", "lr": 0.01, "k": 3, "g_steps_per_d_step": 2, "batch_size": 16},
        headers=H,
    ).json()
    game = c.app.state.explorer.toy.game
    assert view["iterations"] == 3  # not restarted
    assert game.g_loss_fn.__name__ == "generator_loss_minimax"
    assert [g["lr"] for g in game.opt_d.param_groups] == [0.01]
    view = c.post("/api/toy/step", json={"kind": "iteration", "n": 1}, headers=H).json()
    assert view["d_updates"] == 3 + 3 and view["g_updates"] == 3 + 2 and view["settings"]["k"] == 3
    view = c.post("/api/toy/settings", json={"optimizer": "sgd"}, headers=H).json()
    assert isinstance(game.opt_g, torch.optim.SGD) and view["iterations"] == 4
    view = c.post("/api/toy/settings", json={"seed": 5}, headers=H).json()
    assert view["iterations"] == 0 and view["settings"]["g_loss"] == "minimax"  # a new seed restarts


@pytest.mark.parametrize(
    "body, word",
    [
        ({"k": 0}, "k must be"),
        ({"lr": -1}, "lr must be"),
        ({"lr": "fast"}, "lr must be"),
        ({"g_loss": "wasserstein"}, "g_loss must be"),
        ({"dataset": "moons"}, "dataset must be"),
        ({"rule": "sometimes"}, "rule must be"),
        ({"batch_size": 10**6}, "batch_size must be"),
        ({"dataset": "drawn"}, "needs points"),
        ({"dataset": "drawn", "points": [[0, 9]]}, "|x|, |y| <="),
        ({"dataset": "drawn", "points": [[0, 0]] * 201}, "points must be"),
        ({"colour": "red"}, "unknown setting"),
    ],
)
def test_bad_settings_are_clear_400s(body, word):
    r = client().post("/api/toy/settings", json=body, headers=H)
    assert r.status_code == 400 and word in r.json()["error"]


def test_drawn_points_become_the_target():
    points = [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]]
    view = client().post("/api/toy/settings", json={"dataset": "drawn", "points": points}, headers=H).json()
    assert view["dim"] == 2 and view["n_modes"] == 3
    np.testing.assert_allclose(view["modes"], points)


def test_a_lost_mode_is_marked():
    """A mode once covered (mode_coverage) and no longer is listed as lost."""
    s = ToySession("ring8")
    first = s.view()
    s.ever_covered = np.ones(8, dtype=bool)  # as if G had covered all eight modes before
    view = s.view()
    assert sorted(view["lost"]) == [i for i in range(8) if not first["covered"][i]]
    assert view["modes_covered"] == first["modes_covered"] < 8


def test_bad_step_requests_are_400s():
    c = client()
    for body in ({"kind": "x"}, {"n": 0}, {"n": 10**6}, {"n": "5"}, {"speed": 3}):
        r = c.post("/api/toy/step", json=body, headers=H)
        assert r.status_code == 400 and r.json()["error"], body
    r = c.post("/api/toy/step", content=b"{not json", headers=H)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = c.post("/api/toy/step", json=[1, 2], headers=H)
    assert r.status_code == 400 and "object" in r.json()["error"]


# ------------------------------------------------------------------------------------------ safety


def test_every_endpoint_needs_the_token():
    c = client()
    paths = [("GET", "/"), ("GET", "/static/style.css"), *ROUTES]
    for method, path in paths:
        for headers in ({}, {"X-Advnets-Token": "wrong"}):
            r = c.request(method, path, headers=headers, json={} if method == "POST" else None)
            assert r.status_code == 403, (method, path)
            assert "token" in r.json()["error"]
    assert c.get(f"/api/toy?token={TOKEN}").status_code == 200
    assert c.get("/api/toy", headers=H).status_code == 200


def test_the_page_sets_the_token_cookie_then_needs_no_header():
    c = client()
    r = c.get(f"/?token={TOKEN}")
    assert r.status_code == 200 and "<canvas" in r.text
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    assert c.get("/api/toy").status_code == 200  # the cookie now


def test_the_page_loads_nothing_from_the_network():
    c = client()
    for name in ("/", "/static/plot.js", "/static/toy.js", "/static/model.js", "/static/style.css"):
        text = c.get(name, headers=H).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


@pytest.mark.parametrize(
    "raw", ["/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/app.py", "/static/../../pretrained.py"]
)
def test_no_file_outside_the_static_folder_is_served(raw):
    r = client().get(raw, headers=H)
    assert r.status_code == 404
    assert "import" not in r.text


def test_no_endpoint_takes_a_path():
    c = client()
    for (method, path), _ in ROUTES.items():
        if method == "POST":
            r = c.post(path, json={"path": "/etc/passwd"}, headers=H)
            assert r.status_code in (400, 404) and "passwd" not in r.text.replace("/etc/passwd", ""), path
            assert "root:" not in r.text


def test_bodies_over_the_limit_are_refused():
    c = client()
    r = c.post("/api/toy/settings", content=b" " * (MAX_BODY + 1), headers=H)
    assert r.status_code == 413 and "bytes" in r.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    r = c.post("/api/toy/settings", content=chunks(), headers=H)
    assert r.status_code == 413


def test_the_request_rate_is_bounded():
    c = client(limit=RateLimit(rate=0.01, burst=3))
    codes = [c.get("/api/toy", headers=H).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]


def test_unknown_paths_and_a_missing_model_are_json_errors():
    c = client()
    r = c.get("/api/nothing", headers=H)
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    r = c.post("/api/model/grid", json={"seed": 0}, headers=H)
    assert r.status_code == 404 and "--run" in r.json()["error"]


# ------------------------------------------------------------------------------------------ models


def _tiny_run(tmp_path_factory, digits, name, **nets):
    cfg = tiny_config(epochs=1, monitor_every=0)
    if nets:
        cfg = override(
            cfg, generator=override(cfg.generator, **nets["g"]), discriminator=override(cfg.discriminator, **nets["d"])
        )
    run = tmp_path_factory.mktemp("explore") / name
    Trainer(cfg, digits).fit(run_dir=run, progress=False, tensorboard=False)
    return run


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, digits):
    return _tiny_run(tmp_path_factory, digits, "plain")


@pytest.fixture(scope="module")
def plain(plain_run):
    return ModelSession.from_run(plain_run)


def test_the_grid_is_advnets_sample_s(plain):
    from advnets.sampling import generate

    images = client(plain).post("/api/model/grid", json={"seed": 7, "n": 64}, headers=H).json()["images"]
    expected = generate(plain.g, 64, 7, plain.image_shape).clamp(0, 1)
    got = pixels(images)
    assert got.shape == (64, 8, 8, 1)
    np.testing.assert_allclose(got[..., 0] / 255, expected[:, 0].numpy(), atol=0.5 / 255 + 1e-6)


def test_neighbours_are_the_nearest_training_images_and_the_ratio_is_figure_2_s(plain):
    from advnets.sampling import generate

    out = client(plain).post("/api/model/neighbours", json={"seed": 7, "index": 5}, headers=H).json()
    sample = generate(plain.g, 64, 7, plain.image_shape)[5].reshape(-1).double().numpy()
    train = plain.dataset.train.reshape(len(plain.dataset.train), -1).double().numpy()
    dist = np.sqrt(((train - sample) ** 2).sum(axis=1))
    assert out["indices"][0] == int(np.argmin(dist))
    assert out["indices"][:4] == list(np.argsort(dist, kind="stable")[:4])
    assert out["distance"] == pytest.approx(dist.min(), rel=1e-6)
    held = plain.dataset.valid[:200]
    held = held.reshape(len(held), -1).double().numpy()
    held_median = np.median(np.sqrt(((held[:, None] - train[None]) ** 2).sum(-1)).min(axis=1))
    assert out["heldout_median"] == pytest.approx(held_median, rel=1e-6)
    assert out["ratio"] == pytest.approx(out["distance"] / out["heldout_median"])
    assert pixels(out["images"]).shape[0] == 4


def test_a_path_runs_from_sample_a_to_sample_b(plain):
    c = client(plain)
    grid = pixels(c.post("/api/model/grid", json={"seed": 1}, headers=H).json()["images"])
    for spherical in (False, True):
        body = {"seed": 1, "a": 2, "b": 9, "steps": 6, "spherical": spherical}
        path = pixels(c.post("/api/model/path", json=body, headers=H).json()["images"])
        assert path.shape[0] == 6
        np.testing.assert_array_equal(path[0], grid[2])
        np.testing.assert_array_equal(path[-1], grid[9])


def test_moving_z_by_zero_keeps_the_sample(plain):
    c = client(plain)
    n = plain.info()["directions"]
    grid = pixels(c.post("/api/model/grid", json={"seed": 1}, headers=H).json()["images"])
    same = pixels(
        c.post("/api/model/move", json={"seed": 1, "index": 4, "amounts": [0] * n}, headers=H).json()["images"]
    )
    np.testing.assert_array_equal(same[0], grid[4])
    moved = pixels(
        c.post("/api/model/move", json={"seed": 1, "index": 4, "amounts": [3] * n}, headers=H).json()["images"]
    )
    assert not np.array_equal(moved[0], grid[4])


def test_the_verdict_is_d_s_output(plain):
    x = torch.rand(64, generator=torch.Generator().manual_seed(0))
    out = client(plain).post("/api/model/verdict", json={"pixels": x.tolist()}, headers=H).json()
    with torch.no_grad():
        expected = torch.sigmoid(plain.d.eval()(x[None])).item()
    assert out["d_real"] == pytest.approx(expected, rel=1e-5)
    assert len(out["indices"]) == 4


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/model/grid", {"seed": 0, "n": 65}),
        ("/api/model/grid", {"seed": -1}),
        ("/api/model/grid", {"seed": 0, "class": 3}),
        ("/api/model/path", {"seed": 0, "a": 0, "b": 1, "steps": 1}),
        ("/api/model/path", {"seed": 0, "a": 0, "b": 64}),
        ("/api/model/path", {"seed": 0, "a": 0, "b": 1, "spherical": "yes"}),
        ("/api/model/neighbours", {"seed": 0}),
        ("/api/model/move", {"seed": 0, "index": 0, "amounts": [1]}),
        ("/api/model/verdict", {"pixels": [0.5] * 63}),
        ("/api/model/verdict", {"pixels": [2.0] * 64}),
        ("/api/model/inpaint", {"mask": [0] * 64, "index": 0}),
    ],
)
def test_bad_model_requests_are_clear_400s(plain, path, body):
    r = client(plain).post(path, json=body, headers=H)
    assert r.status_code == 400, r.text
    assert r.json()["error"] and "Traceback" not in r.text


def test_a_run_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(AdvnetsError, match="no such run directory"):
        ModelSession.from_run(tmp_path / "missing")
    with pytest.raises(AdvnetsError, match="not an advnets run"):
        ModelSession.from_run(tmp_path)
    code, _, err = cli_in_process("explore", "--run", tmp_path, "--no-browser", "--port", "0")
    assert code == 2 and err.startswith("advnets: error:") and "not an advnets run" in err and err.count("\n") == 1


def test_cli_refuses_a_bad_port_and_data_without_a_model():
    code, _, err = cli_in_process("explore", "--port", "70000", "--no-browser")
    assert code == 2 and "--port" in err
    code, _, err = cli_in_process("explore", "--data", "embedded", "--no-browser")
    assert code == 2 and "--data goes with --run or --pretrained" in err


def test_progress_follows_a_run_that_trains_on(tmp_path_factory, digits):
    """metrics.jsonl rows after a step, and a newer checkpoint reloaded (as while a run is training)."""
    run = _tiny_run(tmp_path_factory, digits, "growing")
    c = client(ModelSession.from_run(run))
    first = c.get("/api/model/progress?after=-1", headers=H).json()
    assert first["rows"] and not first["reloaded"]
    last = first["rows"][-1]["step"]
    assert c.get(f"/api/model/progress?after={last}", headers=H).json()["rows"] == []
    code, _, err = cli_in_process("train", "--out", run, "--resume", "--epochs", "2", "--no-progress")
    assert code == 0, err
    more = c.get(f"/api/model/progress?after={last}", headers=H).json()
    assert more["rows"] and more["rows"][0]["step"] > last
    assert more["reloaded"] and more["step"] > first["step"]
    assert c.get("/api/model/progress?after=soon", headers=H).status_code == 400


def test_a_conditional_run_draws_the_chosen_class(tmp_path_factory, digits):
    run = _tiny_run(tmp_path_factory, digits, "cond", g={"condition": "class", "cond_dim": 10}, d={"cond_dim": 10})
    c = client(ModelSession.from_run(run))
    info = c.get("/api/model", headers=H).json()
    assert info["condition"] == "class" and info["classes"] == 10
    three = pixels(c.post("/api/model/grid", json={"seed": 0, "n": 4, "class": 3}, headers=H).json()["images"])
    seven = pixels(c.post("/api/model/grid", json={"seed": 0, "n": 4, "class": 7}, headers=H).json()["images"])
    assert not np.array_equal(three, seven)
    assert c.post("/api/model/grid", json={"seed": 0, "class": 10}, headers=H).status_code == 400
    assert c.post("/api/model/verdict", json={"pixels": [0.1] * 64, "class": 2}, headers=H).status_code == 200


def test_an_inpainting_run_keeps_the_visible_pixels(tmp_path_factory, digits):
    run = _tiny_run(
        tmp_path_factory,
        digits,
        "inpaint",
        g={"hidden_sizes": (64, 64), "condition": "inpaint", "cond_dim": 2 * 64},
        d={"cond_dim": 64},
    )
    session = ModelSession.from_run(run)
    c = client(session)
    mask = [1 if i % 8 >= 4 else 0 for i in range(64)]  # the right half hidden
    out = c.post("/api/model/inpaint", json={"mask": mask, "index": 3, "k": 5}, headers=H).json()
    done, original = pixels(out["images"]), pixels(out["original"])
    assert done.shape[0] == 5
    visible = np.array(mask).reshape(8, 8) == 0
    for image in done:
        np.testing.assert_array_equal(image[..., 0][visible], original[0, ..., 0][visible])
    assert c.post("/api/model/grid", json={"seed": 0}, headers=H).status_code == 400  # draws nothing alone
    assert c.post("/api/model/inpaint", json={"mask": mask, "index": 10**6}, headers=H).status_code == 400


# ------------------------------------------------------------------------------------ the real server


@pytest.mark.slow  # a fresh process imports torch: ~14 s on 2 busy cores
def test_the_command_serves_warns_off_loopback_and_stops_cleanly_on_ctrl_c():
    """`advnets explore --host 0.0.0.0 --port 0`: a warning naming who can reach it, one URL with its token; the
    token opens the page and the API, its absence is a 403; Ctrl-C (SIGINT) stops it with exit code 0."""
    import json
    import re
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    cmd = [sys.executable, "-m", "advnets", "explore", "--host", "0.0.0.0", "--port", "0", "--no-browser"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port, token = re.search(r"http://0\.0\.0\.0:(\d+)/\?token=(\S+)", line).groups()
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/?token={token}", timeout=30) as r:
            assert r.status == 200 and b"<canvas" in r.read()
        with urllib.request.urlopen(f"{base}/api/toy?token={token}", timeout=30) as r:
            assert json.loads(r.read())["dim"] == 1
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{base}/api/toy", timeout=30)
        assert e.value.code == 403
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    out, err = proc.stdout.read(), proc.stderr.read()
    assert code == 0 and "stopped" in out
    assert "warning: listening on 0.0.0.0: anyone who can reach this machine" in err
    assert "Traceback" not in err


def test_every_file_the_page_loads_ships_in_the_package_and_is_served():
    import re

    from advnets.explore.app import STATIC_DIR

    c = client()
    page = c.get("/", headers=H).text
    names = re.findall(r'(?:src|href)="/static/([^"]+)"', page)
    assert {"style.css", "plot.js", "toy.js", "model.js"} <= set(names)
    for name in names:
        assert (STATIC_DIR / name).is_file(), name
        r = c.get(f"/static/{name}", headers=H)
        assert r.status_code == 200 and r.content == (STATIC_DIR / name).read_bytes()


def test_a_port_in_use_is_a_clear_error():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, out, err = cli_in_process("explore", "--port", port, "--no-browser")
    assert code == 2 and f"--port {port}: cannot listen there" in err and out == ""
