"""Drives the web UI in headless Chromium (Debian's, /usr/bin/chromium) with Playwright.

Usage: ui_browser.py URL WRITER_KEY PLAYER_KEY SCREENSHOT_DIR

Covers: a player talks to a character and sees what the reply stood on; a player is refused
the writer pages; a writer browses canon, accepts a proposal (edited) and sees canon change,
then reverts it and sees it gone; markup in canon text is shown as text; every form control
has a label and the skip link is the first stop of the keyboard. Prints "ok" at the end.
"""

import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

URL, WRITER, PLAYER, SHOTS = sys.argv[1:5]
os.makedirs(SHOTS, exist_ok=True)


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def sign_in(browser, key):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{URL}/ui")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lorekeeper")
    return page, dialogs


def check_accessible(page):
    """Every form control has a label; the first Tab lands on the skip link."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
                 .map(el => el.outerHTML)"""
    )
    assert not unlabelled, f"{page.url}: controls without a label: {unlabelled}"
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert focused == "Skip to content", f"{page.url}: first Tab went to {focused!r}"


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

    # A player talks to Odile and sees what the reply stood on.
    page, _ = sign_in(browser, PLAYER)
    page.goto(f"{URL}/ui/play")
    check_accessible(page)
    page.get_by_label("Character").select_option(label="Odile Marrow")
    page.get_by_label("Story time").fill("2")
    page.get_by_role("button", name="Start talking").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Talking to Odile Marrow")
    page.get_by_label("Say to Odile Marrow").fill("Good evening, Warden. What keeps you busy?")
    page.get_by_role("button", name="Say").click()
    turn = page.get_by_role("region", name="Turn 1")
    expect(turn.locator(".reply")).to_contain_text("Odile Marrow: ")
    turn.get_by_text("Provenance and watermark").click()
    expect(turn).to_contain_text("signature valid")
    expect(turn.locator(".watermark")).to_contain_text("z =")
    turn.get_by_text(re.compile(r"Facts used")).click()
    shot(page, "playground")
    # ... and is refused the writer pages.
    for path in ["/ui/review", "/ui/canon", "/ui/history", "/ui/policy"]:
        response = page.goto(f"{URL}{path}")
        assert response.status == 403, f"{path}: {response.status}"
        expect(page.get_by_role("alert")).to_contain_text("needs a writer key")
    shot(page, "player-refused")
    page.context.close()

    # A writer browses canon.
    page, dialogs = sign_in(browser, WRITER)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Canon").click()
    page.get_by_role("link", name="Lanterns of Brindlemoor").click()
    check_accessible(page)
    page.get_by_label("Search names, personas and facts").fill("warden")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Odile Marrow").click()
    expect(page.get_by_role("heading", name="Persona")).to_be_visible()
    expect(page.get_by_role("img", name="Relationships of Odile Marrow")).to_be_visible()
    expect(page.get_by_role("link", name="Brindlemoor Nocturne")).to_be_visible()
    shot(page, "canon-character")
    page.goto(f"{URL}/ui/canon/lanterns")
    shot(page, "canon-production")

    # The review queue: markup in proposed text stays text.
    page.goto(f"{URL}/ui/review")
    check_accessible(page)
    hostile = page.get_by_role("article").filter(has_text="Markup test")
    expect(hostile).to_contain_text("<script>alert('pwned')</script>")
    assert page.locator("main script").count() == 0, "a script from canon text became markup"
    shot(page, "review-queue")

    # Accept the session's fact, edited; canon shows it on the Guildhall's page.
    proposal = page.get_by_role("article").filter(has_text="Wren went to the Guildhall")
    added = proposal.get_by_label(re.compile("Statements to add"))
    edited = re.sub(r'lore#statement> "[^"]*"', 'lore#statement> "Wren waited at the Guildhall until the lamps were lit."', added.input_value())
    added.fill(edited)
    proposal.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("status")).to_contain_text("Accepted")
    page.goto(f"{URL}/ui/canon/lanterns/guildhall")
    expect(page.get_by_role("table")).to_contain_text("Wren waited at the Guildhall until the lamps were lit.")
    shot(page, "canon-after-accept")

    # History: the acceptance is the newest commit; revert it and the fact is gone.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="History").click()
    check_accessible(page)
    shot(page, "history")
    first = page.get_by_role("row").nth(1)
    expect(first).to_contain_text("Accept")
    first.get_by_role("link").first.click()
    expect(page.locator(".diff")).to_contain_text("Wren waited at the Guildhall")
    shot(page, "commit")
    page.get_by_role("button", name="Revert this commit").click()
    expect(page.get_by_role("status")).to_contain_text("Revert")
    page.goto(f"{URL}/ui/canon/lanterns/guildhall")
    expect(page.get_by_text("Wren waited at the Guildhall")).to_have_count(0)
    page.goto(f"{URL}/ui/history/diff?from=head~2&to=head~1")
    expect(page.locator(".diff")).to_contain_text("Wren waited at the Guildhall")
    shot(page, "diff")

    # Policy pages.
    page.goto(f"{URL}/ui/policy")
    expect(page.get_by_role("heading", name="Ratings")).to_be_visible()
    expect(page.get_by_text("Off limits in this production").first).to_be_visible()
    shot(page, "policy")
    assert not dialogs, f"a dialog opened: {dialogs}"
    browser.close()

print("ok")
