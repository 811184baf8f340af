"""The pictures of docs/explore.md: each view of `advnets explore`, in headless Chromium (Selenium and the
system chromedriver, as tests/test_explore_browser.py), cropped and reduced to a small palette PNG.

Usage: python scripts/explore_screenshots.py [OUT_DIR]   (default docs/; about a minute on 2 cores)
"""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "docs")


def save(driver, name: str, height: int) -> None:
    """The top ``height`` CSS pixels of the page, as a 64-colour PNG."""
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image = image.crop((0, 0, min(image.width, 1140), height))
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(OUT / name, optimize=True)
    print(f"-> {OUT / name} ({(OUT / name).stat().st_size // 1024} kB)")


def wait(driver, condition, seconds: float = 120):
    WebDriverWait(driver, seconds, poll_frequency=0.2).until(lambda d: condition(d))


def play(driver, iterations: int) -> None:
    driver.find_element(By.ID, "play").click()
    wait(driver, lambda d: int(d.find_element(By.ID, "iterations").text) >= iterations)
    driver.find_element(By.ID, "play").click()
    time.sleep(0.5)


def main() -> int:
    cmd = [sys.executable, "-m", "advnets", "explore", "--pretrained", "mnist-paper", "--port", "0", "--no-browser"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    url = re.search(r"(http://\S+)", server.stdout.readline()).group(1)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        d.get(url)
        wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-toy-views"))
        per_frame = d.find_element(By.ID, "per-frame")
        per_frame.clear()
        per_frame.send_keys("10")
        play(d, 1500)
        save(d, "explore_figure1.png", 640)
        Select(d.find_element(By.ID, "dataset")).select_by_value("ring8")
        wait(d, lambda d: d.find_element(By.ID, "modes").text.endswith("of 8"))
        play(d, 1500)
        save(d, "explore_ring8.png", 640)
        d.find_element(By.ID, "tab-model").click()
        grid = d.find_element(By.ID, "grid")
        wait(d, lambda d: grid.get_attribute("data-painted") == "64")
        corner = (-grid.size["width"] // 2 + 28, -grid.size["height"] // 2 + 28)
        ActionChains(d).move_to_element_with_offset(grid, *corner).click().perform()
        wait(d, lambda d: d.find_element(By.ID, "neighbours").get_attribute("data-painted") == "5")
        second = (corner[0] + 5 * 56, corner[1] + 56)
        ActionChains(d).key_down(Keys.SHIFT).move_to_element_with_offset(grid, *second).click().key_up(
            Keys.SHIFT
        ).perform()
        wait(d, lambda d: d.find_element(By.ID, "path").get_attribute("data-painted") == "10")
        slider = d.find_element(By.ID, "dir-sliders").find_element(By.TAG_NAME, "input")
        ActionChains(d).click_and_hold(slider).move_by_offset(40, 0).release().perform()
        d.execute_script("window.scrollTo(0, 0)")
        save(d, "explore_model.png", 720)
        canvas = d.find_element(By.ID, "draw")
        d.execute_script("arguments[0].scrollIntoView({block: 'start'})", canvas)
        stroke = ActionChains(d).move_to_element_with_offset(canvas, 30, -90).click_and_hold()
        for dx, dy in ((-40, -10), (-30, 20), (10, 40), (50, 20), (-20, 40), (-40, 50)):
            stroke = stroke.move_by_offset(dx, dy)
        stroke.release().perform()
        wait(d, lambda d: d.find_element(By.ID, "verdict").text.startswith("D(x)"))
        time.sleep(0.5)
        save(d, "explore_draw.png", 420)
    finally:
        d.quit()
        server.send_signal(signal.SIGINT)
        server.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
