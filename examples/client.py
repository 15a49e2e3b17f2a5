"""Print the summaries of the newest pushes to main (needs `pip install requests`).

Usage: TRACKER_URL=http://127.0.0.1:8080 TRACKER_API_KEY=gpt_... python3 examples/client.py
"""
import os

import requests

base = os.environ.get("TRACKER_URL", "http://127.0.0.1:8080")
res = requests.get(
    f"{base}/api/v1/pushes",
    headers={"Authorization": f"Bearer {os.environ['TRACKER_API_KEY']}"},
    params={"branch": "main", "limit": 10},
    timeout=10,
)
res.raise_for_status()
for push in res.json()["pushes"]:
    print(push["summary"])
