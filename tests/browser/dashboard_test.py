#!/usr/bin/python3
"""Drives the ringfence dashboard in headless Chromium (selenium).

Against a running ringfenced (--http_listen) that has a HALTED rollout and a
RUNNING one: loads the page, enters the token, checks the halted rollout's
page shows the HALT decision's evidence sentence, opens the running
rollout, pauses it with a reason through the page's dialog, and checks the
page then shows PAUSED. Saves screenshots: SCREENSHOT of the paused
rollout, and SCREENSHOT with "-halted" before its extension of the halted
one.

Exit 0 on success, 1 on a failed check, 2 if Chromium, chromedriver or
selenium is missing (a missing browser is a failure, never a skip).

Run with the system python (Debian's python3-selenium):
  /usr/bin/python3 tests/browser/dashboard_test.py --url http://127.0.0.1:PORT \
      --token TOKEN --halted ID --running ID --screenshot out/dashboard.png
"""
import argparse
import json
import os
import sys
import traceback
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TIMEOUT_S = 20


def fail_setup(message):
    print("dashboard_test: SETUP FAILURE: " + message, file=sys.stderr)
    sys.exit(2)


try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    fail_setup("selenium is not installed for %s (%s); install python3-selenium"
               % (sys.executable, e))


def api_get(url, token, path):
    req = urllib.request.Request(url + path)
    req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def halt_evidence(url, token, rollout_id):
    """The explanation of the HALT decision's first evidence, from the API."""
    st = api_get(url, token, "/v1/rollouts/" + rollout_id)
    decision = st["rollout"]["lastDecision"]
    if decision.get("verdict") != "HALT":
        raise AssertionError("rollout %s: last decision is %s, not HALT"
                             % (rollout_id, decision.get("verdict")))
    return decision["evidence"][0]["explanation"]


def make_driver():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            fail_setup(path + " is missing; install chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,1600",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def save_screenshot(driver, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    driver.save_screenshot(path)
    print("screenshot: " + path)


def click(driver, by, value):
    """Clicks the element once clickable; the page re-renders parts of
    itself every poll, so an element found may be replaced before the
    click lands: find it again."""
    def attempt(d):
        try:
            element = EC.element_to_be_clickable((by, value))(d)
            if not element:
                return False
            element.click()
            return True
        except StaleElementReferenceException:
            return False
    WebDriverWait(driver, TIMEOUT_S).until(attempt)


def text_of(driver, element_id):
    for _ in range(5):
        try:
            els = driver.find_elements(By.ID, element_id)
            return els[0].text if els else ""
        except StaleElementReferenceException:
            pass
    return ""


def run(args, driver):
    wait = WebDriverWait(driver, TIMEOUT_S)
    expected = args.expect_evidence or halt_evidence(args.url, args.token,
                                                     args.halted)

    driver.get(args.url + "/")
    token = wait.until(EC.visibility_of_element_located((By.ID, "token")))
    token.send_keys(args.token)
    driver.find_element(By.ID, "login-submit").click()
    # The token is in sessionStorage, not in the URL or a cookie.
    assert args.token not in driver.current_url, "token leaked into the URL"
    assert not driver.get_cookies(), "the page set cookies"
    stored = driver.execute_script(
        "return sessionStorage.getItem('ringfence.token');")
    assert stored == args.token, "token not kept in sessionStorage"

    # The list shows both rollouts with their states.
    wait.until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, '#rollouts tr[data-rollout="%s"]' % args.running)))
    listing = text_of(driver, "rollouts")
    assert args.halted in listing and "HALTED" in listing, listing
    assert args.running in listing and "RUNNING" in listing, listing

    # The halted rollout's page shows the HALT decision's evidence.
    click(driver, By.LINK_TEXT, args.halted)
    wait.until(EC.text_to_be_present_in_element((By.ID, "rollout-state"),
                                                "HALTED"))
    wait.until(EC.text_to_be_present_in_element((By.ID, "decisions"), expected))
    assert "HALT" in text_of(driver, "decisions")
    wait.until(EC.presence_of_element_located((By.ID, "evalue-chart")))
    wait.until(EC.text_to_be_present_in_element((By.ID, "audit"), "halt"))
    print("halted rollout shows: " + expected)
    root, ext = os.path.splitext(args.screenshot)
    save_screenshot(driver, root + "-halted" + (ext or ".png"))

    # Back to the list, open the running rollout and pause it.
    click(driver, By.LINK_TEXT, "← all rollouts")
    click(driver, By.LINK_TEXT, args.running)
    wait.until(EC.text_to_be_present_in_element((By.ID, "rollout-state"),
                                                "RUNNING"))
    click(driver, By.ID, "action-pause")
    reason = wait.until(EC.visibility_of_element_located(
        (By.ID, "action-reason")))
    # An empty reason is refused by the page itself.
    driver.find_element(By.ID, "action-confirm").click()
    assert driver.find_element(By.ID, "action-dialog").is_displayed()
    reason.send_keys(args.reason)
    driver.find_element(By.ID, "action-confirm").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "rollout-state"),
                                                "PAUSED"))
    wait.until(EC.text_to_be_present_in_element((By.ID, "rollout-reason"),
                                                args.reason))
    wait.until(EC.text_to_be_present_in_element((By.ID, "audit"), "pause"))
    # Markup in the reason stays text: no element was made of it.
    assert not driver.find_elements(By.CSS_SELECTOR, "#view b, #view img"), \
        "server text was parsed as HTML"
    errors = text_of(driver, "action-result")
    assert not errors, "action refused: " + errors
    print("running rollout paused from the page")
    save_screenshot(driver, args.screenshot)

    if args.reader_token:
        # A token whose role may read but not act: the page shows the
        # server's 403, and nothing changes.
        click(driver, By.ID, "sign-out")
        token = wait.until(EC.visibility_of_element_located((By.ID, "token")))
        token.send_keys(args.reader_token)
        driver.find_element(By.ID, "login-submit").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "rollout-state"),
                                                    "PAUSED"))
        click(driver, By.ID, "action-resume")
        wait.until(EC.visibility_of_element_located(
            (By.ID, "action-reason"))).send_keys("a reader tries")
        driver.find_element(By.ID, "action-confirm").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "action-result"),
                                                    "403 PERMISSION_DENIED"))
        print("reader token refused: " + text_of(driver, "action-result"))
        assert "PAUSED" in text_of(driver, "rollout-state")

    if args.approval:
        # The two-person rule: the request's own requester (--token) is
        # refused in the page; a second principal approves it there.
        click(driver, By.ID, "sign-out")
        for who, expect_refusal in ((args.token, True),
                                    (args.approver_token, False)):
            token = wait.until(EC.visibility_of_element_located((By.ID, "token")))
            token.send_keys(who)
            driver.find_element(By.ID, "login-submit").click()
            driver.get(args.url + "/#/")
            row = '#approvals tr[data-approval="%s"]' % args.approval
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, row)))
            click(driver, By.CSS_SELECTOR, row + " button.approval-approve")
            wait.until(EC.visibility_of_element_located(
                (By.ID, "action-reason"))).send_keys("approved in the browser")
            driver.find_element(By.ID, "action-confirm").click()
            if expect_refusal:
                wait.until(EC.text_to_be_present_in_element(
                    (By.ID, "action-result"), "403 PERMISSION_DENIED"))
                print("requester refused: " + text_of(driver, "action-result"))
                click(driver, By.ID, "sign-out")
            else:
                wait.until(EC.invisibility_of_element_located(
                    (By.CSS_SELECTOR, row)))
                errors = text_of(driver, "action-result")
                assert not errors, "approval refused: " + errors
                print("second principal approved " + args.approval)
        root, ext = os.path.splitext(args.screenshot)
        save_screenshot(driver, root + "-approved" + (ext or ".png"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--halted", required=True)
    parser.add_argument("--running", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--reason", default="paused from the browser test")
    parser.add_argument("--reader-token", default="",
                        help="also check that this token (a role that may not "
                        "act) sees the server's 403 in the page")
    parser.add_argument("--approval", default="",
                        help="a pending approval request made by --token's "
                        "principal: the page must refuse its approval by "
                        "--token and carry it out for --approver-token")
    parser.add_argument("--approver-token", default="")
    parser.add_argument("--expect-evidence", default="",
                        help="the HALT evidence sentence (default: asked of the API)")
    args = parser.parse_args()
    args.url = args.url.rstrip("/")

    driver = make_driver()
    ok = False
    try:
        run(args, driver)
        ok = True
    except Exception:  # a failed check or a timeout: report, screenshot, fail
        traceback.print_exc()
        print("page text at failure:\n" + driver.find_element(By.TAG_NAME, "body").text,
              file=sys.stderr)
        ok = False
    finally:
        try:
            if not ok:  # else saved once the pause showed
                save_screenshot(driver, args.screenshot)
        finally:
            driver.quit()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
