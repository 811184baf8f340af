"""`advnets explore` in a real browser (issue 29): headless Chromium, driven by Selenium through the system's
chromedriver (Debian's ``chromium`` and ``chromium-driver``; nothing is downloaded), against a real server
process started as a user would start it (``advnets explore --pretrained mnist-paper --port 0 --no-browser``).

Skipped, with the reason, where Chromium, its driver or Selenium is missing (.ci/run installs them)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

CHROMIUM = os.environ.get("ADVNETS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ADVNETS_CHROMEDRIVER", "/usr/bin/chromedriver")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip(
        f"no browser for the explore page tests: {CHROMIUM} and {CHROMEDRIVER} are needed "
        "(apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WAIT = 60  # seconds: the CI machine may be busy
# Starting the server (a shipped model loads in ~5 s) and Chromium takes 10-15 s on 2 busy cores: slow, run by CI.
pytestmark = pytest.mark.slow


def start(*args):
    """A real ``advnets explore`` process; its URL (with the token) from its first line."""
    cmd = [sys.executable, "-m", "advnets", "explore", *map(str, args), "--port", "0", "--no-browser"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
    if match is None:
        proc.kill()
        pytest.fail(f"no URL printed: {line!r} {proc.stderr.read()}")
    return proc, match.group(1)


def stop(proc) -> None:
    proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
    assert proc.wait(30) == 0
    assert "stopped" in proc.stdout.read()


@pytest.fixture(scope="module")
def server():
    """The server with a shipped model."""
    proc, url = start("--pretrained", "mnist-paper")
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(WAIT)
    yield driver
    driver.quit()


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def wait_for(driver, condition, message: str):
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(lambda d: condition(d), message)


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-toy-views"), "no toy view")


def test_play_trains_figure_1_and_the_jsd_falls(server, browser):
    open_page(browser, server)
    Select(browser.find_element(By.ID, "dataset")).select_by_value("gaussian")
    browser.find_element(By.ID, "reset").click()
    wait_for(browser, lambda d: text(d, "iterations") == "0" and text(d, "jsd") not in ("", "–"), "a fresh 1-D game")
    jsd_before = float(text(browser, "jsd"))
    curve_before = browser.find_element(By.ID, "toy-canvas").get_attribute("data-d-sum")
    per_frame = browser.find_element(By.ID, "per-frame")
    per_frame.clear()
    per_frame.send_keys("20")
    browser.find_element(By.ID, "play").click()
    wait_for(browser, lambda d: int(text(d, "iterations")) >= 400, "play did not reach 400 iterations")
    browser.find_element(By.ID, "play").click()  # pause
    assert text(browser, "play") == "Play"
    wait_for(browser, lambda d: float(text(d, "jsd")) < jsd_before - 0.02, "the JSD did not fall")
    assert browser.find_element(By.ID, "toy-canvas").get_attribute("data-d-sum") != curve_before
    assert float(text(browser, "fps")) > 0


def test_one_d_step_and_one_g_step(server, browser):
    open_page(browser, server)
    browser.find_element(By.ID, "reset").click()
    wait_for(browser, lambda d: text(d, "iterations") == "0" and text(d, "d-updates") == "0", "reset")
    browser.find_element(By.ID, "dstep").click()
    wait_for(browser, lambda d: text(d, "d-updates") == "1", "D step")
    assert text(browser, "g-updates") == "0"
    browser.find_element(By.ID, "gstep").click()
    wait_for(browser, lambda d: text(d, "g-updates") == "1", "G step")
    assert (text(browser, "iterations"), text(browser, "d-updates")) == ("0", "1")


def test_the_2d_ring_shows_modes_and_drawn_points_become_the_target(server, browser):
    open_page(browser, server)
    Select(browser.find_element(By.ID, "dataset")).select_by_value("ring8")
    wait_for(browser, lambda d: text(d, "modes").endswith("of 8"), "the ring's mode counter")
    Select(browser.find_element(By.ID, "dataset")).select_by_value("drawn")
    canvas = browser.find_element(By.ID, "toy-canvas")
    for dx, dy in ((-100, -100), (100, -100), (0, 100)):
        ActionChains(browser).move_to_element_with_offset(canvas, dx - 110, dy).click().perform()
    browser.find_element(By.ID, "use-points").click()
    wait_for(browser, lambda d: text(d, "modes").endswith("of 3"), "three drawn points as three modes")


def test_the_model_view_grid_neighbours_and_path(server, browser):
    open_page(browser, server)
    browser.find_element(By.ID, "tab-model").click()
    grid = browser.find_element(By.ID, "grid")
    wait_for(browser, lambda d: grid.get_attribute("data-painted") == "64", "the 64-sample grid")
    tile = 56  # 28 pixels at zoom 2
    ActionChains(browser).move_to_element_with_offset(
        grid, -grid.size["width"] // 2 + tile // 2, -grid.size["height"] // 2 + tile // 2
    ).click().perform()
    neighbours = browser.find_element(By.ID, "neighbours")
    wait_for(browser, lambda d: neighbours.get_attribute("data-painted") == "5", "the sample and 4 neighbours")
    assert "ratio" in text(browser, "ratio")
    ActionChains(browser).key_down(Keys.SHIFT).move_to_element_with_offset(
        grid, -grid.size["width"] // 2 + 3 * tile + tile // 2, -grid.size["height"] // 2 + tile // 2
    ).click().key_up(Keys.SHIFT).perform()
    path = browser.find_element(By.ID, "path")
    wait_for(browser, lambda d: path.get_attribute("data-painted") == "10", "a path of 10 images")


def test_drawing_a_digit_gives_d_s_verdict(server, browser):
    open_page(browser, server)
    browser.find_element(By.ID, "tab-model").click()
    canvas = browser.find_element(By.ID, "draw")
    wait_for(browser, lambda d: canvas.is_displayed(), "the drawing canvas")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    stroke = ActionChains(browser).move_to_element_with_offset(canvas, -10, -80).click_and_hold()
    for dx, dy in ((5, 30), (5, 30), (5, 30), (5, 30), (5, 30)):
        stroke = stroke.move_by_offset(dx, dy)
    stroke.release().perform()
    wait_for(browser, lambda d: text(d, "verdict").startswith("D(x) = "), "no verdict after the stroke")
    p = float(re.search(r"D\(x\) = ([0-9.]+)", text(browser, "verdict")).group(1))
    assert 0.0 <= p <= 1.0
    assert browser.find_element(By.ID, "draw-neighbours").get_attribute("data-painted") == "4"


def test_an_inpainting_run_s_completions_and_progress(tmp_path, digits, browser):
    """A run (`--run DIR`) trained for inpainting: load a test image, paint a mask with the pointer, complete it;
    the run's progress panel shows its checkpoint step."""
    from advnets.config import override
    from advnets.train import Trainer
    from conftest import tiny_config

    cfg = tiny_config(epochs=1, monitor_every=0)
    cfg = override(
        cfg,
        generator=override(cfg.generator, hidden_sizes=(64, 64), condition="inpaint", cond_dim=2 * 64),
        discriminator=override(cfg.discriminator, cond_dim=64),
    )
    Trainer(cfg, digits).fit(run_dir=tmp_path / "run", progress=False, tensorboard=False)
    proc, url = start("--run", tmp_path / "run")
    try:
        browser.get(url)
        browser.find_element(By.ID, "tab-model").click()
        wait_for(browser, lambda d: d.find_element(By.ID, "inpaint-box").is_displayed(), "the inpainting panel")
        wait_for(browser, lambda d: text(d, "model-step") not in ("", "0"), "the run's checkpoint step")
        mask = browser.find_element(By.ID, "mask")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", mask)
        time.sleep(0.5)  # the first image loads
        stroke = ActionChains(browser).move_to_element_with_offset(mask, 20, -80).click_and_hold()
        for _ in range(6):
            stroke = stroke.move_by_offset(0, 25)
        stroke.release().perform()
        hidden = browser.execute_script("return inpaint.mask.reduce((a, b) => a + b, 0)")
        assert 0 < hidden < 64  # the stroke hid some of the 8 x 8 pixels
        browser.find_element(By.ID, "inpaint-go").click()
        completions = browser.find_element(By.ID, "completions")
        wait_for(browser, lambda d: completions.get_attribute("data-painted") == "6", "six completions")
    finally:
        stop(proc)


def test_a_conditional_run_s_class_picker_redraws_the_grid(tmp_path, digits, browser):
    from advnets.config import override
    from advnets.train import Trainer
    from conftest import tiny_config

    cfg = tiny_config(epochs=1, monitor_every=0)
    cfg = override(
        cfg,
        generator=override(cfg.generator, condition="class", cond_dim=10),
        discriminator=override(cfg.discriminator, cond_dim=10),
    )
    Trainer(cfg, digits).fit(run_dir=tmp_path / "run", progress=False, tensorboard=False)
    proc, url = start("--run", tmp_path / "run")
    try:
        browser.get(url)
        browser.find_element(By.ID, "tab-model").click()
        grid = browser.find_element(By.ID, "grid")
        wait_for(browser, lambda d: grid.get_attribute("data-painted") == "64", "the grid")
        picture = "return arguments[0].toDataURL()"
        before = browser.execute_script(picture, grid)
        Select(browser.find_element(By.ID, "class")).select_by_value("3")
        wait_for(browser, lambda d: d.execute_script(picture, grid) != before, "the grid redrawn for class 3")
        assert len(browser.find_element(By.ID, "class").find_elements(By.TAG_NAME, "option")) == 11
    finally:
        stop(proc)
