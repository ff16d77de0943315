"""Headless Chromium for the report's browser test and benchmark: Debian's
`chromium` and `chromium-driver` (`make test` installs them), driven by
Selenium."""

import pathlib
import shutil
import time

from selenium import webdriver


def chromium(folder: pathlib.Path) -> webdriver.Chrome:
  """A headless Chromium with its profile in `folder`, recording the console.

  Raises:
    RuntimeError: Chromium or its driver is not installed (says how to).
  """
  binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
  if not binary or not driver:
    raise RuntimeError(
      "the browser test needs Debian's chromium and chromium-driver "
      "(make test installs them: apt-get install chromium chromium-driver)"
    )
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  for flag in (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,1000",
    f"--user-data-dir={folder / 'chromium-profile'}",
  ):
    options.add_argument(flag)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  return webdriver.Chrome(
    options=options, service=webdriver.ChromeService(executable_path=driver)
  )


def wait(browser, script: str, timeout: float = 20.0):
  """Runs `script` until it returns something true, and returns that."""
  end = time.monotonic() + timeout
  while time.monotonic() < end:
    value = browser.execute_script(script)
    if value:
      return value
    time.sleep(0.05)
  raise AssertionError(f"timed out after {timeout} s waiting for: {script}")
