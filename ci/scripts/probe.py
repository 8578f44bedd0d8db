"""The smoke test's probe: GET URL until it answers 2xx, for at most TIMEOUT
seconds. Prints one line saying what answered (or what it saw last) and exits
0 on 2xx, 1 otherwise.

    probe.py URL TIMEOUT
"""
import sys
import time
import urllib.error
import urllib.request


def main(argv):
    url, timeout = argv[1], float(argv[2])
    start = time.monotonic()
    last = "no answer"
    while True:
        elapsed = time.monotonic() - start
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body = r.read(200).decode("utf-8", "replace").strip()
                print(f"GET {url}: {r.status} after {elapsed:.1f}s: {body}")
                return 0
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.reason}"
        except (OSError, ValueError) as e:
            last = str(getattr(e, "reason", e))
        if elapsed >= timeout:
            print(f"GET {url}: not 2xx within {timeout:g}s; last answer: {last}")
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
