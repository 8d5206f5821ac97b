"""Reads Prometheus text exposition with the official client's parser (prometheus_client), the
way a Prometheus server would, and writes every sample as one JSON object per line:
{"name": ..., "labels": {...}, "value": ..., "type": ...}. Fails on text the parser refuses.

    python prometheus_samples.py URL [TOKEN]
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

request = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    request.add_header("Authorization", f"Bearer {sys.argv[2]}")
with urllib.request.urlopen(request, timeout=10) as response:
    content_type = response.headers.get("Content-Type", "")
    if not content_type.startswith("text/plain"):
        sys.exit(f"unexpected Content-Type {content_type}")
    text = response.read().decode()
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value, "type": family.type}))
