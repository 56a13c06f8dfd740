#!/usr/bin/env python3
"""console-load.py URL USERS REQUESTS PASSWORD [search|register] — signs USERS
security officers (rssi.01…) in to osmose-console (enrolling their TOTP on first
use, from the secret the enrolment page shows), then has them search the journal
for random patients of the bench fixture, all at once, until REQUESTS searches are
done; with `register`, USERS DPOs (dpo.01…) open the register of subject requests
instead, a quarter each: the default view (open requests, newest first, page 1), a
random page of the open requests, a random page of every request, and a random
page of the open requests due within 15 days (by due day). Prints JSON:
p50_ms, p99_ms, max_ms, per_second, failures, mean_rows."""
import base64, hashlib, hmac, http.client, json, random, re, struct, sys, threading, time, urllib.parse

url, users, total, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mode = sys.argv[5] if len(sys.argv) > 5 else "search"
host = urllib.parse.urlparse(url).netloc
random.seed(20261204)
print(f"console-load: seed 20261204", file=sys.stderr)


def totp(secret, step):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


class Client:
    def __init__(self):
        self.connection = http.client.HTTPConnection(host, timeout=60)
        self.cookies = {}

    def request(self, method, path, form=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";")[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(key, None)
        return response.status, text, response.getheader("Location")

    def hidden(self, text, name):
        return re.search(r'name="%s" value="([^"]*)"' % name, text).group(1)

    def sign_in(self, username, secrets):
        _, page, _ = self.request("GET", "/connexion")
        _, _, location = self.request("POST", "/connexion", {"form_token": self.hidden(page, "form_token"), "username": username, "password": password})
        if location == "/connexion/enrolement":
            _, page, _ = self.request("GET", location)
            secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
            self.request("POST", location, {"csrf": self.hidden(page, "csrf"), "code": totp(secret, int(time.time()) // 30)})
            secrets[username] = secret
        elif location == "/connexion/code":
            _, page, _ = self.request("GET", location)
            self.request("POST", location, {"csrf": self.hidden(page, "csrf"), "code": totp(secrets[username], int(time.time()) // 30)})
        status, page, _ = self.request("GET", "/")
        assert status == 200, f"{username} is not signed in ({status})"
        self.csrf = self.hidden(page, "csrf")


secrets = {}
clients = []
for n in range(1, users + 1):
    client = Client()
    client.sign_in(("dpo.%02d" if mode == "register" else "rssi.%02d") % n, secrets)
    clients.append(client)

# The register's views and how many pages each has (from its first page's "Page 1 sur N").
views = ["/dpo/demandes?statut=ouvertes", "/dpo/demandes?statut=toutes", "/dpo/demandes?statut=ouvertes&echeance=15"]
view_pages = {}
if mode == "register":
    for view in views:
        status, page, _ = clients[0].request("GET", view)
        assert status == 200, f"{view}: {status}"
        found = re.search(r"Page 1 sur ([0-9]+)", page)
        view_pages[view] = int(found.group(1)) if found else 1
    print(f"console-load: register pages {view_pages}", file=sys.stderr)

patients = [str(__import__("uuid").UUID(hashlib.md5(f"patient {i}".encode()).hexdigest())) for i in range(50000)]
latencies, rows, failures = [], [], [0]
lock = threading.Lock()
remaining = [total]


def work(client):
    while True:
        with lock:
            if remaining[0] == 0:
                return
            remaining[0] -= 1
            patient = random.choice(patients)
            choice = random.randrange(4)
            if choice == 0:
                path = "/dpo/demandes"
            else:
                view = views[choice - 1]
                path = "%s&page=%d" % (view, random.randint(1, view_pages.get(view, 1)))
        start = time.perf_counter()
        if mode == "register":
            status, page, _ = client.request("GET", path)
        else:
            status, page, _ = client.request("POST", "/journal/recherche", {"csrf": client.csrf, "patient": patient})
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            if status != 200:
                failures[0] += 1
            latencies.append(elapsed)
            if mode == "register":
                rows.append(page.count('<td><a href="/dpo/demandes/'))
            else:
                rows.append(page.count("<tr><td><a href=\"/journal/entree/") + page.count("<tr class=\"denied\"><td><a"))


began = time.perf_counter()
threads = [threading.Thread(target=work, args=(client,)) for client in clients]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
wall = time.perf_counter() - began
latencies.sort()
print(json.dumps({
    "p50_ms": latencies[len(latencies) // 2], "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    "max_ms": latencies[-1], "per_second": len(latencies) / wall, "failures": failures[0], "mean_rows": sum(rows) / len(rows)}))
