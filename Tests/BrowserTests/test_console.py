"""Browser tests of osmose-console: Debian's chromium, driven by chromedriver
through Selenium, against the real service started by Tests/BrowserTests/run.

Each test signs a staff member in as a person would (password, then the TOTP code
of an authenticator app computed here from the secret the enrolment page shows,
itself checked against the QR code decoded from a screenshot by zbarimg), then
uses the pages. Screenshots of the main pages are saved for docs/console.md."""
import base64
import hashlib
import hmac
import os
import re
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["CONSOLE_URL"]
PASSWORD = os.environ["CONSOLE_PASSWORD"]
# The care API writes ids in capitals, the console in lower case.
PATIENT = os.environ["CONSOLE_PATIENT"].lower()
VKEY = os.environ["CONSOLE_VKEY"]
WORK = os.environ["CONSOLE_WORK"]
SHOTS = os.environ["CONSOLE_SCREENSHOTS"]
OSMOSECTL = os.environ["OSMOSECTL"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DPO, OFFICER, SYSADMIN = "dominique.dpo", "rene.rssi", "sacha.admin"
# The TOTP secret of each account once enrolled, and the last time step used
# (the console accepts a code once: a second sign-in waits for the next step).
SECRETS = {}
LAST_STEP = {}
# Every wait is bounded: a page that does not come within this many seconds fails
# the test with a message naming what was awaited (CI machines are slow, not stuck).
WAIT = 30


def totp(secret_base32, step):
    """RFC 6238 (HMAC-SHA-1, 6 digits, 30 s), as an authenticator app computes it."""
    key = base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1_000_000)


def fresh_step(username):
    """A time step not used yet for this account (waits for the next one if needed)."""
    while int(time.time()) // 30 <= LAST_STEP.get(username, -1):
        time.sleep(0.5)
    step = int(time.time()) // 30
    LAST_STEP[username] = step
    return step


class ConsoleBrowserTests(unittest.TestCase):
    driver = None

    @classmethod
    def setUpClass(cls):
        cls.downloads = os.path.join(WORK, "downloads")
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=fr-FR"):
            options.add_argument(argument)
        options.add_experimental_option(
            "prefs", {"download.default_directory": cls.downloads, "download.prompt_for_download": False, "intl.accept_languages": "fr-FR"})
        cls.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        cls.driver.set_page_load_timeout(WAIT)
        cls.driver.set_script_timeout(WAIT)
        # No implicit wait: each navigation is awaited explicitly (submit below), so
        # that a missing element fails at once with its name instead of after a delay.
        cls.driver.implicitly_wait(0)

    @classmethod
    def tearDownClass(cls):
        if cls.driver:
            cls.driver.quit()

    def setUp(self):
        self.driver.delete_all_cookies()

    # Helpers

    def open(self, path):
        self.driver.get(URL + path)
        self.wait_loaded("GET " + path)

    def wait_loaded(self, what):
        self.wait_for("return document.readyState === 'complete'", "%s: the page did not finish loading" % what)

    def wait_for(self, script, message):
        """Waits (at most WAIT seconds) until `script` returns true in the page. While
        the browser is between two pages the script may fail: that is "not yet"."""
        def ready(driver):
            try:
                return driver.execute_script(script) is True
            except WebDriverException:
                return False
        WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(ready, "%s within %d s" % (message, WAIT))

    def mark_page(self):
        """Marks the current document, so that a wait can tell when another replaced it."""
        self.driver.execute_script("window.osmoseTestPreviousPage = true")

    def wait_next_page(self, what):
        self.wait_for(
            "return window.osmoseTestPreviousPage === undefined && document.readyState === 'complete'",
            "%s: the browser did not load the next page" % what)

    def submit(self, element, what):
        """Clicks `element` (a submit button or a link) and waits until the browser
        has replaced the current page by the next one and finished loading it."""
        self.mark_page()
        element.click()
        self.wait_next_page(what)

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def heading(self):
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def submit_password(self, username, password=PASSWORD):
        self.open("/connexion")
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"), "the password of " + username)

    def enrol(self, username, screenshots=False):
        """First sign-in: the QR code (decoded from a screenshot by zbarimg) and the
        typed secret agree; the first code activates TOTP; ten recovery codes."""
        self.submit_password(username)
        self.assertTrue(self.driver.current_url.endswith("/connexion/enrolement"), self.driver.current_url)
        secret = self.driver.find_element(By.ID, "totp-secret").text.replace(" ", "")
        qr = self.driver.find_element(By.CSS_SELECTOR, "figure.qr svg")
        with tempfile.NamedTemporaryFile(suffix=".png") as image:
            image.write(qr.screenshot_as_png)
            image.flush()
            decoded = subprocess.run(["zbarimg", "--raw", "-q", image.name], capture_output=True, text=True, check=True).stdout.strip()
        parsed = urllib.parse.urlparse(decoded)
        self.assertEqual(parsed.scheme, "otpauth")
        self.assertEqual(urllib.parse.parse_qs(parsed.query)["secret"][0], secret, "the QR code carries the secret shown")
        if screenshots:
            self.shot("01-enrolement")
        self.driver.find_element(By.ID, "code").send_keys(totp(secret, fresh_step(username)))
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"), "the enrolment code of " + username)
        codes = self.driver.find_elements(By.CSS_SELECTOR, "#recovery-codes li")
        self.assertEqual(len(codes), 10)
        if screenshots:
            self.shot("02-codes-de-secours")
        SECRETS[username] = secret
        self.sign_out()

    def sign_in(self, username):
        if username not in SECRETS:
            self.enrol(username)
        self.submit_password(username)
        self.assertTrue(self.driver.current_url.endswith("/connexion/code"), self.driver.current_url)
        self.driver.find_element(By.ID, "code").send_keys(totp(SECRETS[username], fresh_step(username)))
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"), "the code of " + username)
        self.assertEqual(self.heading(), "Accueil")

    def sign_out(self):
        self.submit(self.driver.find_element(By.CSS_SELECTOR, ".who form button"), "sign-out")
        self.assertTrue(self.driver.current_url.endswith("/connexion"), self.driver.current_url)

    # Tests

    def test_01_sign_in_with_password_and_totp(self):
        self.open("/connexion")
        self.shot("00-connexion")
        self.enrol(SYSADMIN, screenshots=True)
        self.submit_password(SYSADMIN)
        self.shot("03-code")
        self.driver.find_element(By.ID, "code").send_keys(totp(SECRETS[SYSADMIN], fresh_step(SYSADMIN)))
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"), "the code")
        self.assertEqual(self.heading(), "Accueil")
        self.assertIn("Sauvegardes", self.text())

    def test_02_wrong_code_refused(self):
        if SYSADMIN not in SECRETS:
            self.enrol(SYSADMIN)
        self.submit_password(SYSADMIN)
        # A code that no step near now gives (the console accepts one step of drift).
        now = int(time.time()) // 30
        near = {totp(SECRETS[SYSADMIN], now + k) for k in range(-3, 4)}
        wrong = next(code for code in ("%06d" % n for n in range(1, 10)) if code not in near)
        self.driver.find_element(By.ID, "code").send_keys(wrong)
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"), "a wrong code")
        self.assertIn("Code incorrect", self.text())
        self.open("/")
        self.assertTrue(self.driver.current_url.endswith("/connexion"), "a wrong code opens no page")

    def test_03_wrong_password_refused(self):
        self.submit_password(DPO, password="not-the-password-at-all")
        self.assertIn("Identifiant ou mot de passe incorrect", self.text())

    def test_10_security_officer_searches_and_downloads_a_proof(self):
        self.sign_in(OFFICER)
        self.open("/journal")
        # Page views are journaled, so a checkpoint can be issued while this page is read:
        # the witness then holds it, or has not been given it yet; both are shown as good.
        state = self.driver.find_element(By.CSS_SELECTOR, "#h-witnesses ~ table tbody td:nth-child(2)")
        self.assertIn("good", state.get_attribute("class"), state.text)
        self.assertRegex(state.text, "détient le dernier point de contrôle|n'y est pas encore copié")
        self.shot("10-journal-etat")
        self.open("/journal/recherche")
        self.driver.find_element(By.ID, "patient").send_keys(PATIENT)
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form.search button[type=submit]"), "the search by patient")
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        self.assertGreaterEqual(len(rows), 4, "the patient's care requests (a creation, three reads) are found")
        self.assertIn("camille.sau", self.text())
        self.shot("11-journal-recherche")
        # The same page, by result: the read for a purpose the policy refuses an agent.
        self.open("/journal/recherche")
        Select(self.driver.find_element(By.ID, "result")).select_by_value("denied")
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form.search button[type=submit]"), "the search for refusals")
        denied = self.driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        self.assertGreaterEqual(len(denied), 1, "the refused care request is found")
        self.assertTrue(any("camille.sau" in row.text and "denied" in row.text for row in denied), [row.text for row in denied])
        self.open("/journal/recherche")
        self.driver.find_element(By.ID, "patient").send_keys(PATIENT)
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form.search button[type=submit]"), "the search by patient, again")
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        # A care request's entry (the officer's own searches concern the patient too).
        care = [row for row in rows if "camille.sau" in row.text]
        self.assertTrue(care, [row.text for row in rows])
        self.submit(care[0].find_element(By.TAG_NAME, "a"), "a care request's entry")
        self.assertIn("osmose-care", self.text())
        self.assertIn(PATIENT, self.text())
        # The proof needs a checkpoint covering the entry (osmose-journald signs one
        # within 200 ms of sequencing): bounded wait for the download link.
        entry_path = urllib.parse.urlparse(self.driver.current_url).path
        deadline = time.monotonic() + WAIT
        while not self.driver.find_elements(By.ID, "download-proof") and time.monotonic() < deadline:
            time.sleep(0.5)
            self.open(entry_path)
        self.assertTrue(self.driver.find_elements(By.ID, "download-proof"), "no checkpoint covers the entry %d s later" % WAIT)
        self.shot("12-journal-entree")
        sequence = self.driver.current_url.rsplit("/", 1)[1]
        for name in os.listdir(self.downloads):
            os.remove(os.path.join(self.downloads, name))
        self.driver.find_element(By.ID, "download-proof").click()
        proof = os.path.join(self.downloads, "osmose-journal-%s.proof" % sequence)
        deadline = time.monotonic() + WAIT
        while not os.path.exists(proof) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertTrue(os.path.exists(proof), "the proof %s was not downloaded within %d s (found: %s)" % (proof, WAIT, os.listdir(self.downloads)))
        # The tiles of the proof's checkpoint: the journal has grown since (every page
        # view is an entry), and a tree's partial tiles are those of its own size.
        with open(proof) as file:
            size = int(file.read().partition("\n\n")[2].split("\n")[1])
        checkpoint_id = subprocess.run(
            ["psql", "-d", "osmose_browser", "-tAc", "SELECT max(id) FROM journal.checkpoints WHERE tree_size = %d" % size],
            check=True, capture_output=True, text=True).stdout.strip()
        self.assertTrue(checkpoint_id, "no checkpoint of size %d" % size)
        tiles = os.path.join(WORK, "tiles")
        subprocess.run([OSMOSECTL, "journal", "tiles", "--out", tiles, "--checkpoint", checkpoint_id], check=True, capture_output=True)
        verified = subprocess.run(
            ["python3", os.path.join(ROOT, "scripts/interop/verify-c2sp.py"), "--vkey", VKEY, "--tiles", tiles, "--proof", proof],
            capture_output=True, text=True)
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)

    def test_11_security_officer_verifies_and_sees_alerts(self):
        self.sign_in(OFFICER)
        self.open("/journal")
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form[action='/journal/verifier'] button"), "verify now")
        self.assertIn("Vérification réussie", self.text())
        # The status page reads the journal as sequenced: the run's own event shows
        # once osmose-journald has sequenced it (within its 200 ms batch window).
        deadline = time.monotonic() + WAIT
        while True:
            self.open("/journal")
            found = self.driver.find_elements(By.ID, "last-verify")
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertTrue(found, "the verify run is not shown as the last one %d s later" % WAIT)
        self.assertIn("réussie", found[0].text)
        self.open("/journal/alertes")
        self.assertIn("Accès refusés sur 24 heures", self.text())
        self.shot("13-alertes")

    def test_20_forged_csrf_token_refused(self):
        self.sign_in(OFFICER)
        self.open("/journal/recherche")
        # The search form's token (the page's first one is the sign-out form's).
        self.driver.execute_script("document.querySelector(\"form.search input[name='csrf']\").value = 'forged-token-forged-token-forged-token-xxxx'")
        self.driver.find_element(By.ID, "patient").send_keys(PATIENT)
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form.search button[type=submit]"), "the search with a forged token")
        self.assertIn("ne vient pas de cette console", self.text())
        self.assertNotIn(PATIENT, self.driver.page_source)

    def test_21_replayed_session_after_sign_out_refused(self):
        self.sign_in(DPO)
        session = self.driver.get_cookie("osmose_console")
        self.assertTrue(session["httpOnly"])
        self.assertTrue(session["secure"])
        self.assertEqual(session["sameSite"], "Strict")
        self.sign_out()
        self.driver.add_cookie({"name": "osmose_console", "value": session["value"], "path": "/"})
        self.open("/dpo/politiques")
        self.assertTrue(self.driver.current_url.endswith("/connexion"), "the old session opens nothing")

    def test_30_dpo_refused_on_sysadmin_pages(self):
        self.sign_in(DPO)
        self.open("/dpo/politiques")
        self.assertIn("Conservation", self.text())
        self.shot("30-dpo-politiques")
        for path in ("/admin/sauvegardes", "/admin/cles", "/journal/recherche"):
            self.open(path)
            self.assertIn("ne donne pas accès", self.text(), path)

    def test_31_sysadmin_refused_on_dpo_pages(self):
        self.sign_in(SYSADMIN)
        for path, name in (("/admin/sauvegardes", "40-sauvegardes"), ("/admin/cles", "41-cles"), ("/admin/services", "42-services")):
            self.open(path)
            self.assertNotIn("ne donne pas accès", self.text(), path)
            self.shot(name)
        for path in ("/dpo/politiques", "/journal"):
            self.open(path)
            self.assertIn("ne donne pas accès", self.text(), path)
        self.shot("43-refus")

    def wait_download(self, name):
        path = os.path.join(self.downloads, name)
        deadline = time.monotonic() + WAIT
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertTrue(os.path.exists(path), "%s was not downloaded within %d s (found: %s)" % (name, WAIT, os.listdir(self.downloads)))
        return path

    def test_50_dpo_opens_a_request_reviews_and_releases_its_pack(self):
        self.sign_in(DPO)
        self.open("/dpo/demandes/nouvelle")
        self.shot("50-dpo-nouvelle-demande")
        received = time.strftime("%Y-%m-%d", time.localtime(time.time() - 3 * 86400))
        field = self.driver.find_element
        Select(field(By.ID, "kind")).select_by_value("access")
        # A date input takes the digits in the browser's (French) order: day, month, year.
        field(By.ID, "received_on").clear()
        self.driver.execute_script("document.getElementById('received_on').value = arguments[0]", received)
        Select(field(By.ID, "subject_by")).select_by_value("patient")
        field(By.ID, "patient_id").send_keys(PATIENT)
        field(By.ID, "requester_name").send_keys("Anaïs Lefèvre")
        field(By.ID, "requester_contact").send_keys("12 rue des Lilas, 75011 Paris")
        field(By.ID, "identity_by").send_keys("Bureau des admissions")
        field(By.ID, "identity_documents").send_keys("carte d'identité")
        self.submit(field(By.ID, "open-request"), "the new request")
        self.assertRegex(self.driver.current_url, r"/dpo/demandes/[0-9]+$")
        number = self.driver.find_element(By.ID, "request-number").text
        self.assertIn("csp-eight-days", self.text())
        self.assertIn("Demande enregistrée", self.text())
        self.assertIn("Identité vérifiée", self.text())
        field(By.ID, "note").send_keys("Dossier demandé par courrier du " + received)
        self.submit(field(By.ID, "add-note"), "a note")
        self.assertIn("Dossier demandé par courrier", self.text())
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.shot("51-dpo-demande")
        self.open("/dpo/demandes")
        self.assertTrue(self.driver.find_elements(By.CSS_SELECTOR, "a[href='/dpo/demandes/%s']" % number), "the register lists the request")
        self.shot("52-dpo-registre")
        self.open("/dpo/demandes/%s/dossier" % number)
        self.assertIn("care.patients", self.text())
        self.assertIn("Lefèvre", self.text(), "the pack's preview shows the record, decrypted")
        # The care team's reads, the staff named by reference and role unless the DPO discloses names.
        self.assertIn("agent — sau create care success", self.text(), "the care team's reads are listed")
        self.submit(field(By.ID, "approve-pack"), "the approval of the pack")
        digest = field(By.ID, "approved-digest").text
        self.assertRegex(digest, r"^sha256:[0-9a-f]{64}$")
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.shot("53-dpo-dossier")
        for name in os.listdir(self.downloads):
            os.remove(os.path.join(self.downloads, name))
        field(By.ID, "seal-passphrase").click()
        field(By.ID, "passphrase").send_keys("correct horse battery staple")
        field(By.ID, "release-pack").click()
        sealed = self.wait_download("osmose-demande-%s.age" % number)
        # The download completes once renamed from its .crdownload: wait for a stable age file.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with open(sealed, "rb") as file:
                data = file.read()
            if data.startswith(b"age-encryption.org/v1"):
                break
            time.sleep(0.2)
        self.assertTrue(data.startswith(b"age-encryption.org/v1"), "the released pack is an age file")
        self.open("/dpo/demandes/%s" % number)
        self.assertIn("Dossier remis (scellé)", self.text())
        self.assertIn("sha256:" + hashlib.sha256(data).hexdigest(), self.text(), "the timeline records the digest of the file downloaded")
        # A pack is released once.
        self.open("/dpo/demandes/%s/dossier" % number)
        self.assertIn("dsar.pack_already_released", self.text())

    def test_51_dpo_approves_a_retention_plan_and_a_stale_digest_is_refused(self):
        self.sign_in(DPO)
        self.open("/dpo/conservation")
        self.submit(self.driver.find_element(By.ID, "compute-plan"), "the plan of the day")
        first = self.driver.current_url
        stale = self.driver.find_element(By.ID, "plan-sha256").text
        self.assertRegex(stale, r"^[0-9a-f]{64}$")
        # A second plan computed meanwhile; the page of the first one is sent to the second: refused.
        self.open("/dpo/conservation")
        self.submit(self.driver.find_element(By.ID, "compute-plan"), "a second plan")
        second = self.driver.current_url
        self.assertNotEqual(first, second)
        digest = self.driver.find_element(By.ID, "plan-sha256").text
        self.driver.execute_script("document.getElementById('sha256').value = arguments[0]", stale)
        self.driver.find_element(By.ID, "approver").send_keys("Dominique Martin")
        self.submit(self.driver.find_element(By.ID, "approve-plan"), "the approval of a stale digest")
        self.assertIn("retention.digest_mismatch", self.text())
        self.open(urllib.parse.urlparse(second).path)
        self.assertEqual(self.driver.find_element(By.ID, "sha256").get_attribute("value"), digest, "the form carries the digest shown")
        self.shot("54-dpo-plan")
        self.driver.find_element(By.ID, "approver").send_keys("Dominique Martin")
        self.submit(self.driver.find_element(By.ID, "approve-plan"), "the approval")
        self.assertIn("Dominique Martin", self.driver.find_element(By.ID, "plan-approval").text)
        self.assertEqual(self.driver.find_element(By.ID, "plan-state").text, "approuvé")
        self.open("/dpo/conservation")
        self.shot("55-dpo-plans")

    def test_52_dpo_places_and_releases_a_hold(self):
        self.sign_in(DPO)
        self.open("/dpo/conservation/gels")
        Select(self.driver.find_element(By.ID, "scope")).select_by_value("patient")
        self.driver.find_element(By.ID, "patient").send_keys(PATIENT)
        self.driver.find_element(By.ID, "reason").send_keys("Contentieux en responsabilité médicale")
        self.driver.find_element(By.ID, "reference").send_keys("TJ Paris 26/0042")
        self.submit(self.driver.find_element(By.ID, "place-hold"), "the hold")
        row = self.driver.find_element(By.XPATH, "//tr[td[contains(., 'TJ Paris 26/0042')]]")
        hold = row.get_attribute("id").split("-")[1]
        self.assertIn("en vigueur", row.text)
        self.shot("56-dpo-gels")
        self.driver.find_element(By.ID, "release-" + hold).send_keys("Désistement de l'instance")
        self.submit(self.driver.find_element(By.ID, "release-hold-" + hold), "the release")
        row = self.driver.find_element(By.ID, "hold-" + hold)
        self.assertIn("levé", row.text)
        self.assertFalse(self.driver.find_elements(By.ID, "release-hold-" + hold))
        self.open("/dpo/conservation/certificats")
        self.shot("57-dpo-certificats")

    def test_53_dpo_pages_refused_to_the_other_roles(self):
        for username in (OFFICER, SYSADMIN):
            self.sign_in(username)
            for path in ("/dpo/demandes", "/dpo/demandes/nouvelle", "/dpo/conservation", "/dpo/conservation/gels", "/dpo/conservation/certificats"):
                self.open(path)
                self.assertIn("ne donne pas accès", self.text(), path)
                self.assertNotIn("Anaïs", self.driver.page_source)
            self.sign_out()

    def test_40_keyboard_only_sign_in(self):
        """The sign-in form is usable from the keyboard: labels, order, Enter submits."""
        self.open("/connexion")
        for field in ("username", "password"):
            label = self.driver.find_element(By.CSS_SELECTOR, "label[for='%s']" % field)
            self.assertTrue(label.text)
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "username", "the first field has the focus")
        self.mark_page()
        self.driver.switch_to.active_element.send_keys(DPO + "\t" + PASSWORD + "\n")
        self.wait_next_page("the sign-in submitted by Enter")
        self.assertRegex(self.driver.current_url, r"/connexion/(code|enrolement)$")


if __name__ == "__main__":
    unittest.main()
