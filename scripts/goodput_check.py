"""The failure model (codesign/model/reliability.py) against published fleet figures it was not
fitted to: the Llama 3 405B run on 16,384 H100, BLOOM's GPU failures, OPT-175B's restarts.

    python scripts/goodput_check.py [--json]
"""

import argparse
import json

from codesign.validate.goodput import fleet_checks

ap = argparse.ArgumentParser()
ap.add_argument("--json", action="store_true")
rows = fleet_checks()
if ap.parse_args().json:
    print(json.dumps(rows))
else:
    for r in rows:
        pub = r["published"]
        pub = f"{pub[0]:g}-{pub[1]:g}" if isinstance(pub, list) else f"{pub:.3g}"
        print(f"{r['name']:<22} {r['metric']:<52} published {pub:>8}  predicted "
              f"{r['predicted']:8.3g}  error {r['error_pct']:+6.1f} %")
        print(f"{'':<22} inputs: {r['inputs']}")
        print(f"{'':<22} source: {r['source']}")
